package storage

import (
	"slices"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

func TestListConfigurationsWanted(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(name string, min int, cmd string) {
		t.Helper()
		if err := db.PutConfiguration(api.Configuration{Name: name, MinimumServiceCount: min, Command: cmd}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(list func() ([]api.Configuration, error), want ...string) []api.Configuration {
		t.Helper()
		got, err := list()
		if err != nil {
			t.Fatal(err)
		}
		var have []string
		for _, c := range got {
			have = append(have, c.Name)
		}
		if !slices.Equal(have, want) {
			t.Fatalf("listed %v, want %v", have, want)
		}
		return got
	}
	check := func(want ...string) []api.Configuration {
		t.Helper()
		return names(db.ListConfigurationsWanted, want...)
	}
	put("a", 0, "x")
	put("b", 2, "x")
	put("c", 1, "x")
	check("b", "c")
	check("b", "c")  // from the cache this time
	put("a", 3, "x") // changed: looked at again
	put("b", 0, "x")
	check("a", "c")
	put("c", 1, "y") // a change that keeps it wanted: the new document
	if list := check("a", "c"); list[1].Command != "y" {
		t.Fatalf("a changed configuration listed as it was: %+v", list[1])
	}
	if err := db.DeleteConfiguration("a"); err != nil {
		t.Fatal(err)
	}
	check("c")
	if n := len(db.wanted.docs); n != 2 {
		t.Fatalf("the cache holds %d documents after a delete, want 2", n)
	}

	scaled := func(want ...string) {
		t.Helper()
		names(db.ListConfigurationsScaled, want...)
	}
	scaled()
	if err := db.PutConfiguration(api.Configuration{Name: "s", Scaling: &api.Scaling{}}); err != nil {
		t.Fatal(err)
	}
	scaled("s")
	check("c")
}
