package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// syncMarker is the file beside a Derived database that says whether its
// unsynced commits can be trusted: "<boot id> <open|clean>".
const syncMarker = FileName + ".sync"

// bootID is this boot of the machine ("" where it cannot be read).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// derivedTrusted says whether the database in dir holds every commit it
// made: no marker (it was written with fsync), closed cleanly (synced),
// or left open during this very boot (what a killed process wrote is in
// the page cache, and so in the file).
func derivedTrusted(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, syncMarker))
	if os.IsNotExist(err) {
		return true
	} else if err != nil {
		return false
	}
	boot, state, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if state == "clean" {
		return true
	}
	now := bootID()
	return state == "open" && now != "" && boot == now
}

// writeSyncMarker records state ("open": commits without fsync may follow;
// "clean": all is synced) durably, before anything relies on it.
func writeSyncMarker(dir, state string) error {
	path := filepath.Join(dir, syncMarker)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", syncMarker, err)
	}
	_, err = f.WriteString(bootID() + " " + state + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		if d, derr := os.Open(dir); derr == nil {
			err = d.Sync()
			_ = d.Close()
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", syncMarker, err)
	}
	return nil
}
