/* The tern host tool's commands and what they share. */
#ifndef TERN_HOST_H
#define TERN_HOST_H

#include "tern/tern_cose.h"
#include "tern/tern_sign.h"

/* Largest key file read. */
#define HOST_KEY_FILE_MAX 16384

/*
 * Prints "tern: @what: <sentence for @rc>" to stderr and returns the exit status for a
 * failed command (1). @what may be NULL.
 */
int host_fail(const char *what, int rc);

/* Prints a usage error with @msg and the hint to use --help; returns 2. */
int host_usage(const char *cmd, const char *msg);

/*
 * Loads a signing key from @path: refuses a public key (TERN_E_PUBLIC_KEY) and a file
 * other users can read (TERN_E_KEY_PERMS). On success the caller owns @sg and calls
 * tern_signer_free().
 */
int host_load_signer(const char *path, struct tern_signer *sg);

/* Adds the public key (PEM or DER) in @path to @kr; refuses a private key file
 * (TERN_E_PRIVATE_KEY). */
int host_keyring_add_file(struct tern_keyring *kr, const char *path);

int cmd_key_generate(int argc, char **argv);
int cmd_release_create(int argc, char **argv);
int cmd_release_inspect(int argc, char **argv);
int cmd_release_verify(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_deploy(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_rollout_create(int argc, char **argv);
int cmd_rollout_run(int argc, char **argv);
int cmd_rollout_status(int argc, char **argv);
int cmd_rollout_pause(int argc, char **argv);
int cmd_rollout_resume(int argc, char **argv);
int cmd_rollout_approve(int argc, char **argv);
int cmd_rollout_abort(int argc, char **argv);
int cmd_rollout_pace(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_usb_list(int argc, char **argv);
int cmd_usb_status(int argc, char **argv);
int cmd_usb_reboot(int argc, char **argv);
int cmd_usb_flash(int argc, char **argv);
int cmd_usb_confirm(int argc, char **argv);
int cmd_usb_provision(int argc, char **argv);

#endif
