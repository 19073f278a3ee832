#!/bin/sh
# Restarts the program that start.sh runs, in place, and returns once the
# new one has started (or fails after 60 s). Live update runs it after it
# has copied a new binary into the container.
set -eu
dir=$(dirname "$0")
old=$(cat "$dir/pid" 2>/dev/null) || {
	echo "restart.sh: no program is running under $dir/start.sh: is it the container's entrypoint (a 'command:' in the pod spec would bypass it)?" >&2
	exit 1
}
touch "$dir/restart-requested"
kill -TERM "$old"
for _ in $(seq 60); do
	new=$(cat "$dir/pid" 2>/dev/null) || new=
	if [ -n "$new" ] && [ "$new" != "$old" ]; then
		exit 0
	fi
	sleep 1
done
echo "restart.sh: the program did not start again within 60 s" >&2
exit 1
