# The fleet simulator end to end: ternd fleet + tern publish/deploy/watch/devices against
# a real mosquitto (tests/lib/broker.sh).
SCRIPT_TESTS += tests/fleet/test_fleet.sh
