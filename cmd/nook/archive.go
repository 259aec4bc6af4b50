package main

import (
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
)

func newSaveCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "save -o FILE IMAGE...",
		Short: "Write images to an OCI archive",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("save: name the archive to write with -o FILE")
			}
			s, err := openStore()
			if err != nil {
				return err
			}
			return s.Save(out, args)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the archive to `FILE`")
	return cmd
}

func newLoadCmd(g *globals) *cobra.Command {
	var in string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Read images from an OCI archive",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if in == "" {
				return fmt.Errorf("load: name the archive to read with -i FILE")
			}
			s, err := openStore()
			if err != nil {
				return err
			}
			refs, err := s.Load(in)
			for _, r := range refs {
				fmt.Fprintf(g.stdout, "Loaded image: %s %s\n", r.Name, r.Digest)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "read the archive from `FILE`")
	return cmd
}

func newImportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import ROOTFS.tar NAME",
		Short: "Make a one-layer image of a root filesystem tarball (\"-\" reads stdin)",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			in := os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				in = f
			}
			s, err := openStore()
			if err != nil {
				return err
			}
			d, err := s.ImportRootfs(in, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, d)
			return nil
		},
	}
}

func newPruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove image data no image name references, and what interrupted container removals left",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rt, err := openRuntime()
			if err != nil {
				return err
			}
			// Images that containers run from stay, named or not.
			var keep []v1.Hash
			list, err := rt.Containers.List()
			if err != nil {
				return err
			}
			for _, c := range list {
				if d, err := v1.NewHash(c.ImageID); err == nil {
					keep = append(keep, d)
				}
			}
			rep, err := rt.Store.Prune(keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Removed %d blobs (%s), %d unpacked layers, %d cache entries\n",
				rep.Blobs, humanSize(rep.Bytes), rep.Unpacked, rep.CacheEntries)
			// A minute: a container being created now has no config yet.
			n, err := rt.Containers.RemoveLeftovers(time.Minute)
			if n > 0 {
				fmt.Fprintf(g.stdout, "Removed %d container folders that interrupted removals left\n", n)
			}
			return err
		},
	}
}
