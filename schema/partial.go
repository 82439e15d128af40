package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Partial is a fleet repo loaded without its invalid designs.
type Partial struct {
	Fleet   *Fleet
	Designs []Design
	// Invalid holds the problems of each design left out, by design folder name.
	Invalid map[string][]Issue
}

// LoadPartial loads the fleet repo; when only some designs are invalid, it loads the others
// without them, so one team's mistake does not stop every other team's design. A problem
// outside a design's folder (a cluster file, a budget of the whole repo) still fails the whole
// repo, as Load does. The caller decides what an invalid design keeps (meshcd's daemon keeps
// its last good state applied).
func LoadPartial(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Partial, error) {
	fl, designs, err := Load(ctx, fsys, opts)
	var verr *ValidationError
	if err == nil || !errors.As(err, &verr) {
		if err != nil {
			return nil, err
		}
		return &Partial{Fleet: fl, Designs: designs}, nil
	}
	bad := map[string][]Issue{}
	for _, is := range verr.Issues {
		rest, ok := strings.CutPrefix(is.File, "designs/")
		name, _, nested := strings.Cut(rest, "/")
		if !ok || !nested || name == "" {
			return nil, err // not confined to one design
		}
		bad[name] = append(bad[name], is)
	}
	hidden := hideFS{FS: fsys, hidden: map[string]bool{}}
	for name := range bad {
		hidden.hidden[path.Join("designs", name)] = true
	}
	fl, designs, err2 := Load(ctx, hidden, opts)
	if err2 != nil {
		return nil, fmt.Errorf("%w (and without the invalid designs: %v)", err, err2)
	}
	return &Partial{Fleet: fl, Designs: designs, Invalid: bad}, nil
}

// hideFS is a repo snapshot with some folders left out, as if they did not exist.
type hideFS struct {
	fs.FS
	hidden map[string]bool
}

func (h hideFS) isHidden(name string) bool {
	for p := name; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if h.hidden[p] {
			return true
		}
	}
	return false
}

func (h hideFS) Open(name string) (fs.File, error) {
	if h.isHidden(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return h.FS.Open(name)
}

func (h hideFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if h.isHidden(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries, err := fs.ReadDir(h.FS, name)
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return h.isHidden(path.Join(name, e.Name())) }), err
}
