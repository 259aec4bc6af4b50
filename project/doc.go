// Package project owns nook.toml: its schema, loading (merging several
// files, ${VAR} interpolation, strict decoding with positioned errors),
// validation and the image and container graph. Later it also composes the
// project lifecycle (up, down, the watch loop, the supervisor) out of the
// lower packages.
//
// It may import layers, rootless and watch; none of them may import it, and
// cmd/nook is its only importer.
package project
