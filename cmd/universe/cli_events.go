package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/api/client"
)

// eventsCommand is `universe events`: the event log, or with -f followed
// (polled every second, resuming after the last event shown).
var eventsCommand = &command{usage: "events [--type T] [--instance ID] [--since SEQ] [-f]", nargs: [2]int{0, 0},
	flags: func(fs *flag.FlagSet) func(*remote, []string) int {
		typ := fs.String("type", "", "only events of this type")
		inst := fs.String("instance", "", "only this instance's")
		since := fs.Uint64("since", 0, "events after this sequence number")
		follow := fs.Bool("f", false, "follow: print new events as they come")
		return func(r *remote, _ []string) int {
			f := client.EventFilter{Since: *since, Type: *typ, InstanceID: *inst}
			for {
				evs, err := r.c.Events(r.ctx, f)
				if err != nil {
					return r.fail(err)
				}
				if r.json && !*follow {
					r.printJSON(evs) // one document
					return exitOK
				}
				for _, e := range evs {
					if r.json { // following: one line an event
						b, _ := json.Marshal(e)
						fmt.Fprintln(r.stdout, string(b))
					} else {
						fmt.Fprintf(r.stdout, "%s  %-20s %s%s\n", e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Type, orPrefix(e.InstanceID), e.Message)
					}
					f.Since = e.Seq
				}
				if !*follow {
					return exitOK
				}
				select {
				case <-r.ctx.Done():
					return exitOK
				case <-time.After(time.Second):
				}
			}
		}
	}}

func orPrefix(id string) string {
	if id == "" {
		return ""
	}
	return id + ": "
}

// webhookGroup is `universe webhook create|list|delete|deliveries`.
var webhookGroup = group{name: "webhook", subs: map[string]*command{
	"create": {usage: "webhook create <url> --events T,T|* [--format json|discord]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			events := fs.String("events", "*", "event types, comma-separated, or *")
			format := fs.String("format", "json", "json (signed) or discord")
			return func(r *remote, a []string) int {
				w, err := r.c.CreateWebhook(r.ctx, client.WebhookCreate{URL: a[0], Events: strings.Split(*events, ","), Format: *format})
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(w)
					return exitOK
				}
				fmt.Fprintf(r.stdout, "Created webhook %s.\nSigning secret (shown only now; store it safely): %s\n", w.ID, w.Secret)
				return exitOK
			}
		}},
	"list": {usage: "webhook list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		list, err := r.c.Webhooks(r.ctx)
		return printList(r, list, err, []string{"ID", "URL", "EVENTS", "FORMAT", "CREATED"}, func(w api.Webhook) []string {
			return []string{w.ID, redactURL(w.URL), strings.Join(w.Events, ","), w.Format, w.CreatedAt.UTC().Format("2006-01-02 15:04:05Z")}
		})
	}},
	"delete": {usage: "webhook delete <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteWebhook(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted webhook %s.\n", a[0])
		}
		return exitOK
	}},
	"deliveries": {usage: "webhook deliveries <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		list, err := r.c.WebhookDeliveries(r.ctx, a[0])
		return printList(r, list, err, []string{"DELIVERY", "EVENT", "OUTCOME", "ATTEMPTS", "STATUS", "TIME", "ERROR"}, func(d api.Delivery) []string {
			return []string{d.ID, d.EventType + " #" + strconv.FormatUint(d.EventSeq, 10), d.Outcome, strconv.Itoa(d.Attempts),
				strconv.Itoa(d.Status), d.Time.UTC().Format("2006-01-02 15:04:05Z"), orDash(d.Error)}
		})
	}},
}}

// redactURL shows a webhook's URL without its path (Discord's and
// Slack's paths carry the token).
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/…"
}
