#!/bin/sh
# Entrypoint of the Tilt dev image (build/tilt/Dockerfile). Runs
# $WIRESPAN_BINARY with the container's arguments, and runs it again, in
# the same container, whenever restart.sh asks. Live update (Tilt's own for
# the first cluster, `kinddev sync` for the others) copies a new binary over
# the old one and then runs restart.sh: the pod, its IP and its volumes stay;
# only the process is new.
#
# Any other exit ends the container with the program's own status, as if
# this wrapper were not there, so a crash still shows in Kubernetes as a
# container restart. SIGTERM and SIGINT go on to the program as SIGTERM, and
# the wrapper exits when the program does.
set -u
dir=$(dirname "$0")
marker="$dir/restart-requested"
pidfile="$dir/pid"
pid=
stopping=

forward() {
	stopping=1
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; fi
}
trap forward TERM INT

while :; do
	rm -f "$marker"
	"$WIRESPAN_BINARY" "$@" &
	pid=$!
	echo "$pid" >"$pidfile"
	# A trapped signal interrupts wait (status > 128) while the program is
	# still running, or not yet reaped: then wait again for its own status.
	while :; do
		wait "$pid"
		status=$?
		kill -0 "$pid" 2>/dev/null || break
	done
	pid=
	rm -f "$pidfile"
	if [ -n "$stopping" ] || [ ! -e "$marker" ]; then
		exit "$status"
	fi
	echo "start.sh: restarting $WIRESPAN_BINARY" >&2
done
