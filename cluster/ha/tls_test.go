package ha

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// Masters that share the secret talk; a process with another secret can
// neither connect to a master nor be taken for one.
func TestMutualTLSFromTheSecret(t *testing.T) {
	srvConf, _, err := tlsConfigs([]byte("the-shared-secret-of-the-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	_, goodClient, _ := tlsConfigs([]byte("the-shared-secret-of-the-cluster"))
	_, badClient, _ := tlsConfigs([]byte("another-secret-entirely-here!!"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMux(ln, srvConf)
	defer m.close()
	go func() {
		for {
			c, err := m.http.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			_ = c.Close()
		}
	}()
	read := func(conf *tls.Config) (string, error) {
		c, err := dial(ln.Addr().String(), conf, muxHTTP, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 2)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	if got, err := read(goodClient); err != nil || got != "ok" {
		t.Fatalf("a master with the secret: %q %v", got, err)
	}
	if got, err := read(badClient); err == nil && got == "ok" {
		t.Fatal("a process with another secret was served")
	}
	if _, _, err := tlsConfigs([]byte("short")); err == nil {
		t.Fatal("a short secret was taken")
	}
}
