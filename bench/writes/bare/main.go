// Command bare is the floor of an HTTP key write for bench/writes: a
// net/http process that answers POST /api/keys by writing what a key
// creation writes (a key, its label and an audit entry, in three buckets,
// one fsync'd bbolt Update) and 201 with a small JSON body, and nothing
// else: no authentication, no log, no JSON decoding.
//
//	bare <addr> <database file>
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: bare <addr> <database file>")
	}
	db, err := bolt.Open(os.Args[2], 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	key, audit := bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("a"), 200)
	var n atomic.Int64
	http.HandleFunc("POST /api/keys", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		i := n.Add(1)
		err := db.Update(func(tx *bolt.Tx) error {
			for b, v := range [][]byte{key, body, audit} {
				bk, err := tx.CreateBucketIfNotExists([]byte{'b', byte(b)})
				if err != nil {
					return err
				}
				k := []byte(fmt.Sprintf("%016d", i))
				if b == 0 {
					k = []byte(strconv.FormatInt(i*7919%1000003, 10)) // ids are random: anywhere in the tree
				}
				if err := bk.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"key":{"id":"k%d"},"token":"unv_%064d"}`, i, i)
	})
	log.Fatal(http.ListenAndServe(os.Args[1], nil))
}
