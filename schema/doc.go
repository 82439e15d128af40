// Package schema will own the design language: the embedded CUE schema, loading a fleet repo
// from an fs.FS, and validation errors that name the file, line and path of every problem.
// It does not render.
package schema
