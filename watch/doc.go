// Package watch owns recursive file watching: debounced change sets, ignore
// rules, editor save patterns and recovery from lost events.
//
// It must not import project, layers or rootless; it speaks in paths and
// batches of changes only.
//
// # How it works
//
// inotify (through fsnotify) is not recursive, so [New] walks the project
// and adds a watch to every folder that is not ignored, skipping ignored
// trees (.git, .nook, node_modules, and what .nookignore excludes) so they
// cost no watches. A folder that appears later is walked when its Create
// event arrives, and the files already inside it are reported.
//
// Events are only hints. After a short quiet window (see [DefaultQuiet])
// every path that had an event is looked at again with lstat and compared
// with the last known state; what really changed becomes one [Batch]. That
// is what makes vim's rename dance, JetBrains' safe write, sed -i and git
// checkout come out as one batch naming only real files.
//
// Events can be lost: when the kernel queue overflows, the watcher rescans
// the whole tree and diffs it against its snapshot ([Batch.Rescan]). When an
// inotify limit is hit it reports a [*LimitError], whose Hint names the
// sysctl to raise, and keeps watching what it already watches.
package watch
