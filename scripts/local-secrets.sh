#!/usr/bin/env sh
# For `make run` on one machine: create SECRET_KEY and FIELD_ENCRYPTION_KEY files under DATA_DIR once, mode 0600.
# Production sets SECRET_KEY / FIELD_ENCRYPTION_KEY (or their *_FILE variants) itself.
set -eu
data_dir="$1"
python="$2"
umask 077   # before mkdir: the folder, too, is only this user's (iseif/private.py)
mkdir -p "$data_dir"
[ -s "$data_dir/secret_key" ] || "$python" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$data_dir/secret_key"
[ -s "$data_dir/field_encryption_key" ] || "$python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > "$data_dir/field_encryption_key"
