#!/usr/bin/env bash
# Runs INSIDE the VM: creates rxe0/siw0 (exit 3 if one is missing), then runs the user's script
# (copied to $VMOUT/user-script.sh by ci/softroce.sh) with bash in the repo directory and the
# SMBDIRECT_* environment of the test run. Exit code: the script's.
set -uo pipefail
source "${BASH_SOURCE[0]%/*}/lib.sh"
setup_devices || exit 3
cd "${SOFTROCE_REPO:?}" || exit 4
glog "running ${SOFTROCE_SCRIPT_NAME:-script} $*"
bash "$VMOUT/user-script.sh" "$@"
