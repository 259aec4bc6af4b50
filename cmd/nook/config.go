package main

import (
	"encoding/json"
	"maps"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/nook-dev/nook/project"
)

func newConfigCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the resolved project, or every problem in its files",
		Long: "Print the project as nook sees it: files merged (-f), ${VARIABLES} filled in, defaults applied,\n" +
			"containers outside the enabled profiles left out. Exits 1 listing every problem if the files are invalid.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			p, err := project.Load(g.loadOptions())
			if err != nil {
				return err
			}
			active := *p
			active.Containers = maps.Clone(p.Containers)
			maps.DeleteFunc(active.Containers, func(_ string, c *project.Container) bool { return !c.Active })
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(&active)
			}
			enc := toml.NewEncoder(g.stdout)
			enc.SetIndentTables(true)
			return enc.Encode(&active)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of TOML")
	return cmd
}
