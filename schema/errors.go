package schema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Issue is one problem in a fleet repo, located by file, line and column and by its fieldPath
// inside the design or cluster.
type Issue struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// String renders the issue as `file:line:col: path: message`, the form editors jump to.
func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.File)
	if i.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", i.Line, i.Column)
	}
	b.WriteString(": ")
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Message)
	return b.String()
}

// ValidationError lists every problem found in a fleet repo. It is final: the same input
// always fails the same way, so callers never retry it, and it never prunes anything.
type ValidationError struct {
	Issues []Issue
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

func (e *ValidationError) sort() {
	sort.SliceStable(e.Issues, func(a, b int) bool {
		x, y := e.Issues[a], e.Issues[b]
		if x.File != y.File {
			return x.File < y.File
		}
		if x.Line != y.Line {
			return x.Line < y.Line
		}
		if x.Column != y.Column {
			return x.Column < y.Column
		}
		if x.Path != y.Path {
			return x.Path < y.Path
		}
		return x.Message < y.Message
	})
	// The same problem can reach us twice (for example from two unified files); say it once.
	out := e.Issues[:0]
	for i, is := range e.Issues {
		if i > 0 && is == e.Issues[i-1] {
			continue
		}
		out = append(out, is)
	}
	e.Issues = out
}

// path is a location inside a design or cluster, rendered like `services.checkout.routes[1].to`.
type fieldPath []string

func (p fieldPath) String() string {
	var b strings.Builder
	for _, s := range p {
		if _, err := strconv.Atoi(s); err == nil && b.Len() > 0 {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if isIdent(s) {
			b.WriteString(s)
		} else {
			b.WriteString(strconv.Quote(s))
		}
	}
	return b.String()
}

func (p fieldPath) child(s ...string) fieldPath {
	out := make(fieldPath, 0, len(p)+len(s))
	return append(append(out, p...), s...)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r == '-' || r == '$' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}
