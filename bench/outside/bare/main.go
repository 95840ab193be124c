// Command bare is bench/outside's floor: a bare gin process that serves,
// on the master's paths, the bytes the master answered there (files given
// as path=file arguments), with the two headers every answer of the
// master carries. No middleware, no authentication, no access log.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7100", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	for _, a := range flag.Args() {
		path, file, ok := strings.Cut(a, "=")
		if !ok {
			log.Fatalf("want path=file, got %q", a)
		}
		body, err := os.ReadFile(file)
		if err != nil {
			log.Fatal(err)
		}
		e.GET(path, func(c *gin.Context) {
			c.Header("X-Request-Id", "0123456789abcdef")
			c.Header("X-Content-Type-Options", "nosniff")
			c.Data(http.StatusOK, "application/json; charset=utf-8", body)
		})
	}
	log.Fatal(http.ListenAndServe(*addr, e))
}
