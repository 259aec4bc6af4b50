package project

// merge lays over on top of base, as `-f base.toml -f over.toml` asks:
// tables merge key by key, recursively; any other value in over (a string,
// a number, an array, an array of tables such as steps) replaces base's
// whole. Values keep the position of the file they came from.
func merge(base, over *value) *value {
	if base == nil || base.kind != kindTable || over.kind != kindTable {
		return over
	}
	for _, e := range over.entries {
		base.set(e.key, e.pos, merge(base.get(e.key), e.val))
	}
	return base
}
