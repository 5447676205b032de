#!/bin/sh
# The official redis image builds Redis with protected mode off, so that other containers
# may connect without a password; Debian's keeps it on. Turn it off the same way for the
# test stack (its network reaches only the stack's own containers).
set -eu
if [ "${1:-}" = "redis-server" ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
