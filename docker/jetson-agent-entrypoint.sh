#!/bin/sh
# Entry point of the Jetson agent image (Dockerfile target `jetson-agent`): an SSH server the
# edgebench host reaches like any SSH device; the host pushes the agent and runs it with this
# image's python3 (numpy, psutil, TensorRT from the L4T base).
#
# Environment (all optional):
#   EDGEBENCH_SSH_PORT      port to listen on (2222)
#   EDGEBENCH_SSH_DIR       host key + generated sshd_config (/etc/edgebench-ssh; mount a volume
#                           here so the host key survives new containers: strict host-key checks)
#   EDGEBENCH_AGENT_USER    the login user (edgebench)
#   AUTHORIZED_KEYS         public key line(s) allowed to log in, else mount a file at
#                           EDGEBENCH_AUTHORIZED_KEYS_FILE (~USER/.ssh/authorized_keys)
set -eu

PORT="${EDGEBENCH_SSH_PORT:-2222}"
DIR="${EDGEBENCH_SSH_DIR:-/etc/edgebench-ssh}"
AGENT_USER="${EDGEBENCH_AGENT_USER:-edgebench}"
HOME_DIR="${EDGEBENCH_AGENT_HOME:-$(getent passwd "$AGENT_USER" | cut -d: -f6)}"
if [ -z "$HOME_DIR" ]; then
    echo "jetson agent: user '$AGENT_USER' does not exist in this image" >&2
    exit 2
fi
KEYS="${EDGEBENCH_AUTHORIZED_KEYS_FILE:-$HOME_DIR/.ssh/authorized_keys}"

mkdir -p "$DIR" "$HOME_DIR/.ssh"
if [ ! -f "$DIR/ssh_host_ed25519_key" ]; then
    ssh-keygen -q -t ed25519 -N "" -f "$DIR/ssh_host_ed25519_key"
fi
if [ -n "${AUTHORIZED_KEYS:-}" ]; then
    mkdir -p "$(dirname "$KEYS")"
    printf '%s\n' "$AUTHORIZED_KEYS" > "$KEYS"
fi
if [ ! -s "$KEYS" ]; then
    echo "jetson agent: no authorized key: set AUTHORIZED_KEYS or mount one at $KEYS" >&2
    exit 2
fi

# SSH sessions do not inherit the image's ENV (CUDA and TensorRT paths in L4T images):
# hand them over through ~/.ssh/environment.
{
    echo "PATH=${PATH}"
    if [ -n "${LD_LIBRARY_PATH:-}" ]; then echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH}"; fi
    if [ -n "${CUDA_HOME:-}" ]; then echo "CUDA_HOME=${CUDA_HOME}"; fi
} > "$HOME_DIR/.ssh/environment"

cat > "$DIR/sshd_config" <<CONFIG
Port $PORT
HostKey $DIR/ssh_host_ed25519_key
AuthorizedKeysFile $KEYS
AllowUsers $AGENT_USER
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PermitUserEnvironment yes
UsePAM no
StrictModes no
PidFile $DIR/sshd.pid
Subsystem sftp internal-sftp
CONFIG

mkdir -p /run/sshd 2>/dev/null || true  # privilege separation directory
echo "jetson agent: sshd on port $PORT, user $AGENT_USER, host key $(ssh-keygen -l -f "$DIR/ssh_host_ed25519_key.pub")" >&2
exec /usr/sbin/sshd -D -e -f "$DIR/sshd_config"
