package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// sourceFile is one design or cluster file read from the repo.
type sourceFile struct {
	path string // relative to the repo root
	data []byte
	// owner is the design folder name for design files, "" for cluster files.
	owner string
}

// readRepo lists clusters/*.{cue,yaml,yml} and designs/<name>/*.cue plus
// designs/<name>/design.{yaml,yml}, refusing links and oversized files.
func readRepo(fsys fs.FS, opts LoadOptions) ([]sourceFile, error) {
	verr := &ValidationError{}
	var files []sourceFile
	var total int64
	read := func(p, owner string) error {
		info, err := lstat(fsys, p)
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: "is a symbolic link; meshcd reads only regular files inside the repo"})
			return nil
		}
		if !info.Mode().IsRegular() {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: "is not a regular file"})
			return nil
		}
		if info.Size() > opts.MaxFileBytes {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: fmt.Sprintf("is %s, over the %s limit for one file", bytesText(info.Size()), bytesText(opts.MaxFileBytes))})
			return nil
		}
		total += info.Size()
		if total > opts.MaxTotalBytes {
			return errTooLarge
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, sourceFile{path: p, data: data, owner: owner})
		return nil
	}
	clusters, err := readDirIfExists(fsys, "clusters")
	if err != nil {
		return nil, err
	}
	for _, e := range clusters {
		if e.IsDir() || !isCUEOrYAML(e.Name()) {
			continue
		}
		if err := read(path.Join("clusters", e.Name()), ""); err != nil {
			return nil, tooLarge(err, opts)
		}
	}
	designs, err := readDirIfExists(fsys, "designs")
	if err != nil {
		return nil, err
	}
	for _, d := range designs {
		dir := path.Join("designs", d.Name())
		if !d.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				verr.Issues = append(verr.Issues, Issue{File: dir, Message: "is a symbolic link; meshcd reads only regular files inside the repo"})
			}
			continue
		}
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !(strings.HasSuffix(n, ".cue") || n == "design.yaml" || n == "design.yml") {
				continue
			}
			if err := read(path.Join(dir, n), d.Name()); err != nil {
				return nil, tooLarge(err, opts)
			}
		}
	}
	if len(verr.Issues) > 0 {
		verr.sort()
		return nil, verr
	}
	return files, nil
}

var errTooLarge = errors.New("repo too large")

func tooLarge(err error, opts LoadOptions) error {
	if errors.Is(err, errTooLarge) {
		return &ValidationError{Issues: []Issue{{File: ".", Message: fmt.Sprintf("design and cluster files add up to more than %s", bytesText(opts.MaxTotalBytes))}}}
	}
	return err
}

func readDirIfExists(fsys fs.FS, dir string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// lstat reports a file without following a final symbolic link where the file system can
// tell (os.DirFS and os.Root can), and falls back to Stat where it cannot (a Git snapshot has
// its own notion of links).
func lstat(fsys fs.FS, name string) (fs.FileInfo, error) {
	if l, ok := fsys.(fs.ReadLinkFS); ok {
		return l.Lstat(name)
	}
	return fs.Stat(fsys, name)
}

func isCUEOrYAML(name string) bool {
	return strings.HasSuffix(name, ".cue") || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
