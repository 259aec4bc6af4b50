package layers

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BuildDockerfile builds df's stages in order, each on the image of the
// stage it names in FROM or on a stored image, and tags the target with
// the Dockerfile's Tag. The result's Digest is the target's; Built and
// Cached count the steps of every stage. Earlier stages stay in the store
// untagged (prune removes them), and their unchanged steps are cache hits
// next time like any other. Warnings about build arguments nothing used
// are added to df.Warnings.
func (b *Builder) BuildDockerfile(ctx context.Context, df *Dockerfile) (Result, error) {
	var total Result
	digests := make([]v1.Hash, len(df.Stages))
	for i, s := range df.Stages {
		from := s.From
		if s.Base >= 0 {
			from = digests[s.Base].String()
		}
		base, err := b.base(from)
		if err != nil {
			return total, df.errorf(s.Line, "FROM %s: %w", from, err)
		}
		r, err := df.Recipe(i, from, base.cfg.Config)
		if err != nil {
			return total, err
		}
		res, err := b.Build(ctx, r)
		if err != nil {
			return total, err
		}
		digests[i] = res.Digest
		total.Digest = res.Digest
		total.Built += res.Built
		total.Cached += res.Cached
	}
	df.UnusedBuildArgs()
	return total, nil
}
