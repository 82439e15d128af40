package schema

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
)

// addCUEErrors turns CUE's errors into issues located in the user's files: at CUE's own
// position when it points into a user file, else where the error's path was written.
func addCUEErrors(verr *ValidationError, err error, fallbackFile string, user []userValue, strip []string) {
	errs := cueerrors.Errors(err)
	// CUE explains a value that fits none of the alternatives of a disjunction with one error
	// per alternative; users want one line naming the value and what would fit.
	alternatives := map[string][]string{}
	got := map[string]string{}
	disjunction := map[string]bool{}
	for _, e := range errs {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		k := strings.Join(e.Path(), ".")
		if strings.HasSuffix(msg, "errors in empty disjunction:") {
			disjunction[k] = true
		}
		if m := conflictRE.FindStringSubmatch(msg); m != nil {
			alternatives[k] = append(alternatives[k], m[1])
			got[k] = m[2]
		}
	}
	added := false
	defer func() {
		if !added && err != nil {
			verr.Issues = append(verr.Issues, Issue{File: fallbackFile, Message: friendly(err.Error())})
		}
	}()
	for _, e := range errs {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if strings.TrimSpace(msg) == "" {
			// Errors from outside CUE's evaluator (the YAML parser) carry their text only in Error.
			msg = strings.TrimPrefix(e.Error(), fallbackFile+": ")
		}
		if strings.TrimSpace(msg) == "" {
			msg = "cannot be parsed"
		}
		k := strings.Join(e.Path(), ".")
		if alts := alternatives[k]; disjunction[k] && len(alts) > 0 {
			if !strings.HasSuffix(msg, "errors in empty disjunction:") {
				continue
			}
			alts = slices.Compact(slices.Sorted(slices.Values(alts)))
			msg = fmt.Sprintf("%s is not one of %s", got[k], strings.Join(alts, ", "))
		}
		msg = friendly(msg)
		p := cleanPath(e.Path())
		var is Issue
		found := false
		for _, pos := range cueerrors.Positions(e) {
			if pos.IsValid() && pos.Filename() != schemaFile {
				is = Issue{File: pos.Filename(), Line: pos.Line(), Column: pos.Column(), Path: trim(p, strip), Message: msg}
				found = true
				break
			}
		}
		if !found {
			is = locate(user, fallbackFile, p, strip, msg)
		}
		if is.File == "" {
			is.File = fallbackFile
		}
		verr.Issues = append(verr.Issues, is)
		added = true
	}
}

// locate finds where the deepest existing prefix of p was written in the user's files.
func locate(user []userValue, fallbackFile string, p []string, strip []string, msg string) Issue {
	is := Issue{File: fallbackFile, Path: trim(p, strip), Message: msg}
	for n := len(p); n >= 0; n-- {
		sels := make([]cue.Selector, n)
		for i, s := range p[:n] {
			sels[i] = selector(s)
		}
		cp := cue.MakePath(sels...)
		for _, u := range user {
			fv := u.value.LookupPath(cp)
			if !fv.Exists() {
				continue
			}
			if line, col := position(fv); line > 0 {
				is.File, is.Line, is.Column = u.file, line, col
				return is
			}
		}
	}
	return is
}

func selector(s string) cue.Selector {
	// A list index; signs would make "+1" or "-1" (possible struct labels) indexes.
	if n, err := strconv.Atoi(s); err == nil && s[0] != '+' && s[0] != '-' {
		return cue.Index(n)
	}
	return cue.Str(s)
}

func position(v cue.Value) (line, col int) {
	if pos := v.Pos(); pos.IsValid() {
		return pos.Line(), pos.Column()
	}
	return 0, 0
}

func trim(p []string, strip []string) string {
	for i, s := range strip {
		if i >= len(p) || p[i] != s {
			return fieldPath(p).String()
		}
	}
	return fieldPath(p[len(strip):]).String()
}

// cleanPath turns a CUE error path into plain labels: without the #Repo definition it was
// checked under, and with quoted labels unquoted.
func cleanPath(p []string) []string {
	if len(p) > 0 && (p[0] == "#Repo" || p[0] == "#Design") {
		p = p[1:]
	}
	out := make([]string, len(p))
	for i, s := range p {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		out[i] = s
	}
	return out
}

var conflictRE = regexp.MustCompile(`^conflicting values (.+?) and (.+?)(?: \(mismatched types \w+ and \w+\))?$`)

// friendly rewrites CUE's messages that users misread into plain ones.
func friendly(msg string) string {
	switch {
	case strings.HasPrefix(msg, "incomplete value") || strings.Contains(msg, "field is required but not present"):
		return "required field is missing"
	case mismatchRE.MatchString(msg):
		m := mismatchRE.FindStringSubmatch(msg)
		if m[1] == m[3] { // CUE put the type first: "int and "8080" (mismatched types int and string)"
			return fmt.Sprintf("%s is %s, want %s", m[2], article(m[4]), m[3])
		}
		return fmt.Sprintf("%s is %s, want %s", m[1], article(m[3]), m[4])
	case strings.Contains(msg, "does not satisfy time.Duration"):
		if m := invalidValueRE.FindStringSubmatch(msg); m != nil {
			return m[1] + " is not a duration; write it like 300ms, 5s or 1h30m"
		}
	}
	return msg
}

var mismatchRE = regexp.MustCompile(`^conflicting values (.+) and (.+) \(mismatched types (\w+) and (\w+)\)$`)

var invalidValueRE = regexp.MustCompile(`^invalid value (.+?) \(`)

func article(typ string) string {
	if strings.IndexByte("aeiou", typ[0]) >= 0 {
		return "an " + typ
	}
	return "a " + typ
}

// Locate places a problem found after loading (a render error, say) at the file, line and
// column where the design wrote path, a CUE path such as ingress.hosts."a.example".routes[0];
// as near as it can get when only a prefix of the path was written by the user.
func (d *Design) Locate(path, msg string) Issue {
	fallback := d.Dir
	if len(d.Files) > 0 {
		fallback = d.Files[0]
	}
	p := cue.ParsePath(path)
	if p.Err() != nil || len(d.user) == 0 {
		return Issue{File: fallback, Path: path, Message: msg}
	}
	var labels []string
	for _, sel := range p.Selectors() {
		if sel.Type() == cue.IndexLabel {
			labels = append(labels, strconv.Itoa(sel.Index()))
		} else {
			labels = append(labels, sel.Unquoted())
		}
	}
	return locate(d.user, fallback, labels, nil, msg)
}
