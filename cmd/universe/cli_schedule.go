package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// scheduleGroup is `universe schedule list|create|info|run|runs|enable|disable|delete`.
var scheduleGroup = group{name: "schedule", subs: map[string]*command{
	"list": {usage: "schedule list [--instance ID] [--configuration NAME]", nargs: [2]int{0, 0},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			inst := fs.String("instance", "", "only this instance's")
			cfg := fs.String("configuration", "", "only this configuration's")
			return func(r *remote, _ []string) int {
				list, err := r.c.Schedules(r.ctx, *inst, *cfg)
				return printList(r, list, err, []string{"ID", "NAME", "ON", "CRON", "TIMEZONE", "ENABLED", "NEXT RUN", "TASKS"}, func(s api.Schedule) []string {
					on := "instance " + s.InstanceID
					if s.Configuration != "" {
						on = "configuration " + s.Configuration
					}
					next := "-"
					if s.NextRun != nil {
						next = s.NextRun.UTC().Format("2006-01-02 15:04:05Z")
					}
					var tasks []string
					for _, t := range s.Tasks {
						tasks = append(tasks, strings.TrimSpace(t.Type+" "+t.Payload))
					}
					return []string{s.ID, s.Name, on, s.Cron, s.Timezone, strconv.FormatBool(s.Enabled), next, strings.Join(tasks, " → ")}
				})
			}
		}},
	"create": {usage: "schedule create -f <file.json|->", nargs: [2]int{0, 0},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			file := fs.String("f", "", "the schedule's JSON (- for stdin)")
			return func(r *remote, _ []string) int {
				var s api.Schedule
				if code := readJSONArg(r, *file, &s); code != exitOK {
					return code
				}
				out, err := r.c.CreateSchedule(r.ctx, s)
				if err != nil {
					return r.fail(err)
				}
				return printSchedule(r, out)
			}
		}},
	"info": {usage: "schedule info <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		s, err := r.c.Schedule(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		return printSchedule(r, s)
	}},
	"enable":  scheduleEnable(true),
	"disable": scheduleEnable(false),
	"run": {usage: "schedule run <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		run, err := r.c.RunSchedule(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(run)
		} else {
			fmt.Fprintf(r.stdout, "Run %s started: universe schedule runs %s shows how it went.\n", run.ID, a[0])
		}
		return exitOK
	}},
	"runs": {usage: "schedule runs <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		runs, err := r.c.ScheduleRuns(r.ctx, a[0])
		return printList(r, runs, err, []string{"RUN", "FIRED", "OUTCOME", "TOOK", "REASON", "TASKS"}, func(run api.ScheduleRun) []string {
			took := "-"
			if run.FinishedAt != nil {
				took = run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond).String()
			}
			var tasks []string
			for _, t := range run.Tasks {
				tasks = append(tasks, t.Type+"@"+t.InstanceID+":"+t.Outcome)
			}
			fired := run.FireTime.UTC().Format("2006-01-02 15:04:05Z")
			if run.Manual {
				fired += " (by hand)"
			}
			return []string{run.ID, fired, r.state(strings.ToUpper(run.Outcome)), took, orDash(run.Reason), strings.Join(tasks, " ")}
		})
	}},
	"delete": {usage: "schedule delete <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteSchedule(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted schedule %s.\n", a[0])
		}
		return exitOK
	}},
}}

func scheduleEnable(on bool) *command {
	verb := map[bool]string{true: "enable", false: "disable"}[on]
	return &command{usage: "schedule " + verb + " <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		s, err := r.c.Schedule(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		s.Enabled = on
		if s, err = r.c.PutSchedule(r.ctx, a[0], s); err != nil {
			return r.fail(err)
		}
		return printSchedule(r, s)
	}}
}

func printSchedule(r *remote, s api.Schedule) int {
	if r.json {
		r.printJSON(s)
		return exitOK
	}
	on := "instance " + s.InstanceID
	if s.Configuration != "" {
		on = "configuration " + s.Configuration
	}
	next := "- (disabled)"
	if s.NextRun != nil {
		next = s.NextRun.UTC().Format("2006-01-02 15:04:05Z")
	}
	kv := [][2]string{{"ID", s.ID}, {"Name", s.Name}, {"On", on}, {"Cron", s.Cron + " (" + s.Timezone + ")"},
		{"Enabled", strconv.FormatBool(s.Enabled)}, {"Next run", next}}
	for i, t := range s.Tasks {
		kv = append(kv, [2]string{fmt.Sprintf("Task %d", i+1), fmt.Sprintf("%s %s (after %ds)", t.Type, t.Payload, t.OffsetSeconds)})
	}
	r.fields(kv)
	return exitOK
}

// readJSONArg reads the JSON of -f (a file, or - for stdin) into v.
func readJSONArg(r *remote, file string, v any) int {
	if file == "" {
		fmt.Fprintln(r.stderr, "universe: give the JSON with -f <file|->")
		return exitUsage
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(r.stdin, 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	if err := json.Unmarshal(b, v); err != nil {
		fmt.Fprintf(r.stderr, "universe: %s is not the JSON expected: %v\n", file, err)
		return exitUsage
	}
	return exitOK
}
