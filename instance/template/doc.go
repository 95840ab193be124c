// Package template keeps the template file trees (<dir>/<group>/<name>/)
// and installs them into instance working directories.
//
// Every path that comes from a client is checked twice: textually (relative,
// no "..", no empty or "." segment, no backslash, NUL or control character)
// and then by opening it through an os.Root, which refuses to leave the tree
// whatever symbolic links say. Symbolic links inside templates are refused
// on every path a client names, skipped on export and install.
package template
