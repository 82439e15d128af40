// Package sources is meshcd's side of Git: it polls repos with go-git, listing each repo once
// per poll and fetching only refs that moved, and serves each commit as a read-only fs.FS
// straight from the object store, so nothing is ever checked out.
package sources

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot is one commit of one ref of one repo.
type Snapshot struct {
	Repo     string
	Ref      string
	Revision string
	// Message is the commit's message; meshcd's own commits start with StatusCommitMarker.
	Message string
	// FS reads the commit's files. Symbolic links are reported as such (fs.ModeSymlink) and
	// never followed; submodules are left out.
	FS fs.FS
}

// treeFS is a commit's tree as an fs.FS. go-git's object store is not safe for concurrent
// use, so every read takes the repo's cache lock, and a file's content is read whole, under
// the lock, on its first Read.
type treeFS struct {
	root *object.Tree
	lock func() (unlock func())
}

func (t treeFS) Open(name string) (fs.File, error) {
	defer t.lock()()
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &treeDir{info: treeInfo{name: ".", mode: fs.ModeDir | 0o555}, tree: t.root, lock: t.lock}, nil
	}
	entry, err := t.root.FindEntry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	info, ok := entryInfo(t.root, name, entry)
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	switch {
	case info.mode.IsDir():
		sub, err := t.root.Tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: info, tree: sub, lock: t.lock}, nil
	case info.mode&fs.ModeSymlink != 0:
		return &treeFile{info: info, err: errors.New("is a symbolic link; meshcd does not follow links")}, nil
	}
	file, err := t.root.TreeEntryFile(entry)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &treeFile{info: info, file: file, lock: t.lock}, nil
}

// entryInfo describes a tree entry; ok is false for what a snapshot leaves out (submodules).
func entryInfo(t *object.Tree, name string, e *object.TreeEntry) (treeInfo, bool) {
	info := treeInfo{name: path.Base(name)}
	switch e.Mode {
	case filemode.Dir:
		info.mode = fs.ModeDir | 0o555
	case filemode.Symlink:
		info.mode = fs.ModeSymlink | 0o777
	case filemode.Regular, filemode.Deprecated, filemode.Executable:
		info.mode = 0o444
		if f, err := t.TreeEntryFile(e); err == nil {
			info.size = f.Size
		}
	default:
		return info, false
	}
	return info, true
}

type treeInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i treeInfo) Name() string               { return i.name }
func (i treeInfo) Size() int64                { return i.size }
func (i treeInfo) Mode() fs.FileMode          { return i.mode }
func (i treeInfo) ModTime() time.Time         { return time.Time{} }
func (i treeInfo) IsDir() bool                { return i.mode.IsDir() }
func (i treeInfo) Sys() any                   { return nil }
func (i treeInfo) Type() fs.FileMode          { return i.mode.Type() }
func (i treeInfo) Info() (fs.FileInfo, error) { return i, nil }

type treeFile struct {
	info treeInfo
	file *object.File
	lock func() func()
	data *bytes.Reader
	err  error
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Read(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.data == nil {
		data, err := f.contents()
		if err != nil {
			f.err = &fs.PathError{Op: "read", Path: f.info.name, Err: err}
			return 0, f.err
		}
		f.data = bytes.NewReader(data)
	}
	return f.data.Read(b)
}

func (f *treeFile) contents() ([]byte, error) {
	defer f.lock()()
	r, err := f.file.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (f *treeFile) Close() error { return nil }

type treeDir struct {
	info treeInfo
	tree *object.Tree
	lock func() func()
	read int
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *treeDir) Close() error { return nil }

// ReadDir lists the directory in Git's (name) order.
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	defer d.lock()()
	var out []fs.DirEntry
	for d.read < len(d.tree.Entries) && (n <= 0 || len(out) < n) {
		e := &d.tree.Entries[d.read]
		d.read++
		if info, ok := entryInfo(d.tree, e.Name, e); ok {
			out = append(out, info)
		}
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}
