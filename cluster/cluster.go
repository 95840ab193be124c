// Package cluster holds what the master and its agent nodes share: the
// node credential and the NATS subjects between them. The master's side
// (an embedded NATS server, the node registry, heartbeats) is package hub;
// the node's side is package agent.
//
// Subjects (a node may use only its own, enforced by the server's
// permissions, never by convention):
//
//	universe.to.<node>.>     master → node (the node subscribes)
//	universe.from.<node>.>   node → master (the node publishes)
//	_INBOX.<node>.>          replies to the node's own requests
package cluster

import (
	"errors"
	"regexp"
	"strings"

	"github.com/nats-io/nkeys"
)

// CredentialPrefix starts every node credential, so scanners and log
// masks find it.
const CredentialPrefix = "unvn_"

// Subjects.
const (
	toPrefix   = "universe.to."
	fromPrefix = "universe.from."
)

// To is the subject the master sends what (e.g. "revoked") to node on.
func To(node, what string) string { return toPrefix + node + "." + what }

// From is the subject node reports what (e.g. "hb") on.
func From(node, what string) string { return fromPrefix + node + "." + what }

// FromAll matches what from every node ("universe.from.*.<what>").
func FromAll(what string) string { return fromPrefix + "*." + what }

// NodeOf returns the node of a "universe.from.<node>.<...>" subject.
func NodeOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, fromPrefix)
	if !ok {
		return ""
	}
	node, _, _ := strings.Cut(rest, ".")
	return node
}

// Inbox is the inbox prefix of node's requests.
func Inbox(node string) string { return "_INBOX." + node }

// Permissions of a node, as subject patterns.
func PublishAllowed(node string) []string { return []string{fromPrefix + node + ".>"} }
func SubscribeAllowed(node string) []string {
	return []string{toPrefix + node + ".>", Inbox(node) + ".>"}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// ValidName says whether name can name a node (it becomes a subject
// token): lower-case letters, digits and inner dashes, 1 to 32 of them.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NewCredential makes the credential of node: the node's name and an nkey
// seed ("unvn_<name>_<seed>"). The master keeps only the public key.
func NewCredential(node string) (credential, publicKey string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", "", err
	}
	return CredentialPrefix + node + "_" + string(seed), pub, nil
}

// ErrCredential is the error of a credential that is not one.
var ErrCredential = errors.New("not a node credential (unvn_<name>_<seed>)")

// ParseCredential returns the node name and key pair of a credential.
func ParseCredential(credential string) (node string, kp nkeys.KeyPair, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(credential), CredentialPrefix)
	if !ok {
		return "", nil, ErrCredential
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || !ValidName(rest[:i]) {
		return "", nil, ErrCredential
	}
	kp, err = nkeys.FromSeed([]byte(rest[i+1:]))
	if err != nil {
		return "", nil, ErrCredential
	}
	if _, err := kp.PublicKey(); err != nil {
		return "", nil, ErrCredential
	}
	return rest[:i], kp, nil
}

// TermHeader carries, on every order of a master in a cluster of masters,
// the Raft term it leads in. A node remembers the highest it saw and
// refuses an order under a lower one: a deposed leader never acts late.
// (A master alone sends none; its term is 0.)
const TermHeader = "Universe-Term"

// Heartbeat is what a node publishes on From(node, "hb") every second.
// The node's name is the subject's, never the payload's.
type Heartbeat struct {
	Version string `json:"version"`
	Seq     uint64 `json:"seq"`  // counts up from 1 at the agent's start
	Boot    string `json:"boot"` // random, new at every start of the agent
	Time    int64  `json:"time"` // the node's clock, epoch ms (informational)
}

// Revoked is what the master sends on To(node, "revoked") before it
// disconnects a revoked node.
type Revoked struct {
	Reason string `json:"reason"`
}

// RedactURLs returns a comma-separated list of NATS URLs with any
// user:password@ part replaced, for logs and join lines.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if scheme, rest, ok := strings.Cut(p, "://"); ok {
			if at := strings.LastIndexByte(rest, '@'); at >= 0 {
				p = scheme + "://***@" + rest[at+1:]
			}
		} else if at := strings.LastIndexByte(p, '@'); at >= 0 {
			p = "***@" + p[at+1:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// HasUserInfo says whether any URL of the list carries user:password@.
func HasUserInfo(urls string) bool {
	return RedactURLs(urls) != strings.Join(trimAll(strings.Split(urls, ",")), ",")
}

func trimAll(s []string) []string {
	for i := range s {
		s[i] = strings.TrimSpace(s[i])
	}
	return s
}

// ServerAuthSnippet is the authorization entry an operator adds to their
// own NATS servers' configuration for node (identified by its public
// nkey): the same permissions the embedded server gives it.
func ServerAuthSnippet(node, publicKey string) string {
	q := func(l []string) string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = `"` + s + `"`
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	return "{ nkey: " + publicKey + ", permissions: { publish: { allow: " + q(PublishAllowed(node)) +
		" }, subscribe: { allow: " + q(SubscribeAllowed(node)) + " }, allow_responses: { max: 1, expires: \"1m\" } } }"
}
