// Package layers owns nook's image store and builder: the OCI image layout
// under the store root, tags, the content-addressed build cache, layer tar
// to directory conversion, safe unpacking, and registry I/O.
//
// It must not import project, rootless or watch. When a build step has to
// run inside a container it calls a small interface defined here, which
// rootless satisfies and project wires in.
package layers
