package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// loadIsolated loads the fleet repo; when only some designs are invalid, it loads the rest
// without them, so one team's mistake does not stop every other design. It returns the
// invalid designs with their problems; the caller keeps their last good state applied. A
// problem outside a design's folder (a cluster file) still fails the whole repo.
func loadIsolated(ctx context.Context, files fs.FS) (*schema.Fleet, []schema.Design, map[string][]string, error) {
	fl, designs, err := schema.Load(ctx, files, schema.DefaultLoadOptions())
	var verr *schema.ValidationError
	if err == nil || !errors.As(err, &verr) {
		return fl, designs, nil, err
	}
	bad := map[string][]string{}
	for _, is := range verr.Issues {
		rest, ok := strings.CutPrefix(is.File, "designs/")
		name, _, nested := strings.Cut(rest, "/")
		if !ok || !nested || name == "" {
			return nil, nil, nil, err // not confined to one design
		}
		bad[name] = append(bad[name], is.String())
	}
	hidden := hideFS{FS: files, hidden: map[string]bool{}}
	for name := range bad {
		hidden.hidden[path.Join("designs", name)] = true
	}
	fl, designs, err2 := schema.Load(ctx, hidden, schema.DefaultLoadOptions())
	if err2 != nil {
		return nil, nil, nil, fmt.Errorf("%w (and without the invalid designs: %v)", err, err2)
	}
	return fl, designs, bad, nil
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
