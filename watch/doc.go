// Package watch owns recursive file watching: debounced change sets, ignore
// rules, editor save patterns and recovery from lost events.
//
// It must not import project, layers or rootless; it speaks in paths and
// batches of changes only.
package watch
