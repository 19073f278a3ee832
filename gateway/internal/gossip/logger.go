package gossip

import (
	"bytes"
	"log"

	"github.com/go-logr/logr"
)

// newStdLogger adapts logr to the *log.Logger that memberlist takes.
// memberlist logs lines such as "[WARN] memberlist: ..."; they are all
// debug-level for Wirespan (peers come and go over a WAN), so [DEBUG] lines
// go to V(2) and every other level to V(1), with memberlist's level as a key.
func newStdLogger(l logr.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if !w.log.V(1).Enabled() {
		return len(p), nil
	}
	line := bytes.TrimSpace(p)
	level := "INFO"
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			level = string(line[1:end])
			line = bytes.TrimSpace(line[end+1:])
		}
	}
	v := 1
	if level == "DEBUG" || level == "TRACE" {
		v = 2
	}
	w.log.V(v).Info(string(line), "level", level)
	return len(p), nil
}
