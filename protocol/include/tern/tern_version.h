/* The version of tern's programs (tern, ternd), as their --version prints it. */
#ifndef TERN_VERSION_H
#define TERN_VERSION_H

#ifndef TERN_VERSION
#define TERN_VERSION "0.1.0"
#endif

#endif
