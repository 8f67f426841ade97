/*
 * `tern report NAME`: the deployment record an operations team takes over, from the
 * host database: the release and its notes, the plan, each wave's members and outcome,
 * failures and rollbacks with their reasons, reverts, the timeline of decisions, and the
 * final state of the targeted devices. Markdown, or one self-contained HTML file with an
 * inline SVG timeline (no external assets).
 */
#include "broker.h"
#include "db.h"
#include "host.h"
#include "rollout.h"
#include "rollout_db.h"
#include "rollout_plan.h"

#include "tern/tern_err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char report_help[] =
    "usage: tern report NAME [--format md|html] [--out FILE] [--summary] [--db FILE]\n"
    "\n"
    "Writes the deployment record of rollout NAME: the release and its notes, the plan,\n"
    "each wave's members and outcome, failures and rollbacks with their reasons, reverts,\n"
    "the timeline of decisions, and the final state of the targeted devices.\n"
    "  --format md|html  Markdown (default) or one self-contained HTML file with a\n"
    "                    timeline chart (inline SVG)\n"
    "  --out FILE        write to FILE instead of standard output\n"
    "  --summary         only the summary lines (plain text)\n";

enum fmt { F_MD, F_HTML };

struct rep {
	FILE *f;
	enum fmt fmt;
	struct db *db;
	struct rollout r;
	double t0, t1; /* the timeline's span */
};

/* Writes @s escaped for HTML (or as is for Markdown, with '|' escaped in tables). */
static void esc(const struct rep *p, const char *s)
{
	for (; *s; s++) {
		if (p->fmt == F_HTML && *s == '<')
			fputs("&lt;", p->f);
		else if (p->fmt == F_HTML && *s == '>')
			fputs("&gt;", p->f);
		else if (p->fmt == F_HTML && *s == '&')
			fputs("&amp;", p->f);
		else if (p->fmt == F_HTML && *s == '"')
			fputs("&quot;", p->f);
		else if (p->fmt == F_MD && *s == '|')
			fputs("\\|", p->f);
		else if (p->fmt == F_MD && *s == '\n')
			fputc(' ', p->f);
		else
			fputc(*s, p->f);
	}
}

static const char *stamp(double t, char *out, size_t size)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (t <= 0 || !gmtime_r(&s, &tm) || !strftime(out, size, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(out, size, "-");
	return out;
}

static void heading(const struct rep *p, int level, const char *text)
{
	if (p->fmt == F_MD) {
		fprintf(p->f, "%.*s ", level, "####");
		esc(p, text);
		fputs("\n\n", p->f);
	} else {
		fprintf(p->f, "<h%d>", level);
		esc(p, text);
		fprintf(p->f, "</h%d>\n", level);
	}
}

/* A table: row_begin(), cells, row_end(); the first row is the header. */
static void table_begin(const struct rep *p)
{
	if (p->fmt == F_HTML)
		fputs("<table>\n", p->f);
}

static void table_end(const struct rep *p)
{
	fputs(p->fmt == F_HTML ? "</table>\n" : "\n", p->f);
}

static void row(const struct rep *p, bool header, int n, const char *const *cells)
{
	if (p->fmt == F_HTML) {
		fputs("<tr>", p->f);
		for (int i = 0; i < n; i++) {
			fputs(header ? "<th>" : "<td>", p->f);
			esc(p, cells[i]);
			fputs(header ? "</th>" : "</td>", p->f);
		}
		fputs("</tr>\n", p->f);
		return;
	}
	fputs("|", p->f);
	for (int i = 0; i < n; i++) {
		fputc(' ', p->f);
		esc(p, cells[i]);
		fputs(" |", p->f);
	}
	fputc('\n', p->f);
	if (header) {
		fputs("|", p->f);
		for (int i = 0; i < n; i++)
			fputs("---|", p->f);
		fputc('\n', p->f);
	}
}

static void para(const struct rep *p, const char *text)
{
	if (p->fmt == F_HTML) {
		fputs("<p>", p->f);
		esc(p, text);
		fputs("</p>\n", p->f);
	} else {
		esc(p, text);
		fputs("\n\n", p->f);
	}
}

struct totals {
	int64_t targeted, succeeded, failed, timed_out, pending, waiting, reverted, revert_other;
	int64_t withdrawn;
};

static int totals(struct db *db, const char *name, struct totals *t)
{
	sqlite3_stmt *s = rdb_query(
	    db,
	    "SELECT count(*), coalesce(sum(outcome='succeeded'),0), "
	    "coalesce(sum(outcome='failed'),0),"
	    " coalesce(sum(outcome='timed-out'),0), coalesce(sum(outcome='pending'),0),"
	    " coalesce(sum(outcome='waiting'),0), coalesce(sum(revert_outcome='reverted'),0),"
	    " coalesce(sum(revert_outcome IS NOT NULL AND revert_outcome<>'reverted'),0),"
	    " (SELECT count(*) FROM rollout_withdrawals WHERE rollout=?1 AND taken_at IS NULL)"
	    " FROM rollout_members WHERE rollout=?1",
	    "t", name);
	if (!s)
		return TERN_E_DB;
	int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : db_fail(db, "report");
	if (!rc) {
		t->targeted = sqlite3_column_int64(s, 0);
		t->succeeded = sqlite3_column_int64(s, 1);
		t->failed = sqlite3_column_int64(s, 2);
		t->timed_out = sqlite3_column_int64(s, 3);
		t->pending = sqlite3_column_int64(s, 4);
		t->waiting = sqlite3_column_int64(s, 5);
		t->reverted = sqlite3_column_int64(s, 6);
		t->revert_other = sqlite3_column_int64(s, 7);
		t->withdrawn = sqlite3_column_int64(s, 8);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The summary: a few lines that say what happened. */
static void summary_lines(const struct rollout *r, const struct totals *t, char *out, size_t size)
{
	char withdrawn[64] = "";
	if (t->withdrawn)
		snprintf(withdrawn, sizeof(withdrawn), ", %lld withdrawn by the abort",
			 (long long)t->withdrawn);
	snprintf(out, size,
		 "rollout %s: %s%s%s\n"
		 "release %s (version %s) to %lld devices in %lld waves\n"
		 "%lld succeeded, %lld failed (%lld timed out), %lld pending, %lld not deployed%s",
		 r->name, r->state, r->reason[0] ? " - " : "", r->reason, r->release_id, r->version,
		 (long long)t->targeted, (long long)r->n_waves, (long long)t->succeeded,
		 (long long)(t->failed + t->timed_out), (long long)t->timed_out,
		 (long long)t->pending, (long long)t->waiting, withdrawn);
	if (t->reverted || t->revert_other) {
		size_t n = strlen(out);
		snprintf(out + n, size - n,
			 "\nreverted: %lld back on their previous release, %lld not",
			 (long long)t->reverted, (long long)t->revert_other);
	}
}

static void plan_section(struct rep *p)
{
	const struct rollout *r = &p->r;
	char bake[32], timeout[32], maxf[16], mins[16], rate[48], line[512];
	heading(p, 2, "Plan");
	table_begin(p);
	const char *h[] = {"setting", "value"};
	row(p, true, 2, h);
	const char *rows[][2] = {
	    {"targets", r->targets},
	    {"waves (cumulative)", r->waves_spec},
	    {"bake time", rollout_format_duration(r->bake_s, bake, sizeof(bake))},
	    {"max failures per wave", rollout_format_ratio(r->max_fail_ppm, maxf, sizeof(maxf))},
	    {"min success per wave",
	     r->min_success_ppm ? rollout_format_ratio(r->min_success_ppm, mins, sizeof(mins))
				: "none"},
	    {"device timeout",
	     r->device_timeout_s
		 ? rollout_format_duration(r->device_timeout_s, timeout, sizeof(timeout))
		 : "none"},
	    {"approval before each wave", r->approve_each ? "yes" : "no"},
	    {"activation", r->activate_together ? "together (per wave)" : "each device"},
	    {"pace", rollout_format_rate(r->rate, rate, sizeof(rate))},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		row(p, false, 2, rows[i]);
	table_end(p);
	snprintf(line, sizeof(line),
		 "Members are chosen by the SHA-256 of (rollout name, device id): the same plan on "
		 "every rerun.");
	para(p, line);
}

struct wave_ctx {
	struct rep *p;
};

static int wave_row(void *ctx, const struct rollout_wave_row *w)
{
	struct rep *p = ctx;
	char n[24], size[24], ok[24], bad[24], pend[24], t1[32], t2[32], t3[32];
	snprintf(n, sizeof(n), "%lld", (long long)w->wave + 1);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)w->c.size);
	snprintf(ok, sizeof(ok), "%llu", (unsigned long long)w->c.succeeded);
	snprintf(bad, sizeof(bad), "%llu", (unsigned long long)w->c.failed);
	snprintf(pend, sizeof(pend), "%llu", (unsigned long long)w->c.pending);
	const char *cells[] = {n,
			       w->state,
			       size,
			       ok,
			       bad,
			       pend,
			       stamp(w->started_at, t1, sizeof(t1)),
			       stamp(w->reported_at, t2, sizeof(t2)),
			       stamp(w->gated_at, t3, sizeof(t3))};
	row(p, false, 9, cells);
	return 0;
}

static int members_section(struct rep *p)
{
	heading(p, 2, "Members by wave");
	sqlite3_stmt *s = rdb_query(p->db,
				    "SELECT wave, outcome, group_concat(device_id, ', ') FROM"
				    " (SELECT wave, outcome, device_id FROM rollout_members WHERE"
				    " rollout=?1 ORDER BY wave, rank) GROUP BY wave, outcome"
				    " ORDER BY wave, outcome",
				    "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	table_begin(p);
	const char *h[] = {"wave", "outcome", "devices"};
	row(p, true, 3, h);
	while (sqlite3_step(s) == SQLITE_ROW) {
		char n[24];
		snprintf(n, sizeof(n), "%lld", (long long)sqlite3_column_int64(s, 0) + 1);
		const char *outcome = rdb_text(s, 1);
		const char *cells[] = {n, !strcmp(outcome, "waiting") ? "not deployed" : outcome,
				       rdb_text(s, 2)};
		row(p, false, 3, cells);
	}
	sqlite3_finalize(s);
	table_end(p);
	return 0;
}

/* A table that begins at its first row: its heading (when @title is set) and header. */
struct lazy_table {
	const char *title;
	int n_cols;
	const char *const *head;
	int rows;
};

static void lazy_row(const struct rep *p, struct lazy_table *t, const char *const *cells)
{
	if (!t->rows++) {
		if (t->title)
			heading(p, 3, t->title);
		table_begin(p);
		row(p, true, t->n_cols, t->head);
	}
	row(p, false, t->n_cols, cells);
}

/* Ends @t if it began; returns how many rows it has. */
static int lazy_end(const struct rep *p, const struct lazy_table *t)
{
	if (t->rows)
		table_end(p);
	return t->rows;
}

static int failures_section(struct rep *p)
{
	static const char *const fail_head[] = {"device", "wave", "outcome", "reason", "when"};
	static const char *const revert_head[] = {"device", "previous release", "outcome", "sent"};
	static const char *const withdrawn_head[] = {"device", "wave", "it was", "withdrawn by",
						     "when"};
	static const char *const late_head[] = {"device",    "wave",	     "it was at the abort",
						"withdrawn", "found booted", "outcome"};
	heading(p, 2, "Failures and rollbacks");
	sqlite3_stmt *s = rdb_query(p->db,
				    "SELECT device_id, wave, outcome, coalesce(reason, ''),"
				    " coalesce(outcome_at, 0) FROM rollout_members WHERE rollout=?1"
				    " AND outcome IN ('failed','timed-out') ORDER BY outcome_at",
				    "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	struct lazy_table t = {NULL, 5, fail_head, 0};
	while (sqlite3_step(s) == SQLITE_ROW) {
		char w[24], at[32];
		snprintf(w, sizeof(w), "%lld", (long long)sqlite3_column_int64(s, 1) + 1);
		const char *cells[] = {rdb_text(s, 0), w, rdb_text(s, 2), rdb_text(s, 3),
				       stamp(sqlite3_column_double(s, 4), at, sizeof(at))};
		lazy_row(p, &t, cells);
	}
	sqlite3_finalize(s);
	if (!lazy_end(p, &t))
		para(p, "None.");
	/* Reverts, when the rollout was aborted with --revert. */
	s = rdb_query(
	    p->db,
	    "SELECT device_id, coalesce(prev_release, ''), coalesce(revert_outcome,"
	    " CASE WHEN revert_at IS NULL THEN 'not sent yet (paced)' ELSE"
	    " 'sent, no report yet' END), coalesce(revert_at, 0) FROM rollout_members WHERE"
	    " rollout=?1 AND (revert_generation IS NOT NULL OR revert_outcome IS NOT NULL)"
	    " ORDER BY wave, rank",
	    "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	t = (struct lazy_table){"Reverted to the previous release", 4, revert_head, 0};
	while (sqlite3_step(s) == SQLITE_ROW) {
		char at[32];
		const char *cells[] = {rdb_text(s, 0), rdb_text(s, 1), rdb_text(s, 2),
				       stamp(sqlite3_column_double(s, 3), at, sizeof(at))};
		lazy_row(p, &t, cells);
	}
	sqlite3_finalize(s);
	lazy_end(p, &t);
	/* Commands the abort took back before the devices started them. */
	s = rdb_query(p->db,
		      "SELECT device_id, wave, was, generation, at FROM rollout_withdrawals WHERE"
		      " rollout=?1 AND taken_at IS NULL ORDER BY wave, device_id",
		      "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	t = (struct lazy_table){"Withdrawn by the abort", 5, withdrawn_head, 0};
	while (sqlite3_step(s) == SQLITE_ROW) {
		char at[32], w[24];
		snprintf(w, sizeof(w), "%lld", (long long)sqlite3_column_int64(s, 1) + 1);
		int64_t gen = sqlite3_column_int64(s, 3); /* -1: never sent (--rate) */
		const char *cells[] = {rdb_text(s, 0), w, rdb_text(s, 2),
				       gen > 0	 ? "a newer command: stay on its release"
				       : gen < 0 ? "not sending it"
						 : "clearing the retained command",
				       stamp(sqlite3_column_double(s, 4), at, sizeof(at))};
		lazy_row(p, &t, cells);
	}
	sqlite3_finalize(s);
	lazy_end(p, &t);
	/* Withdrawals that came after the device had booted the release: judged as members. */
	s = rdb_query(p->db,
		      "SELECT x.device_id, x.wave, x.was, x.at, x.taken_at, m.outcome FROM"
		      " rollout_withdrawals x JOIN rollout_members m ON m.rollout=x.rollout AND"
		      " m.device_id=x.device_id WHERE x.rollout=?1 AND x.taken_at IS NOT NULL"
		      " ORDER BY x.wave, x.device_id",
		      "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	t = (struct lazy_table){"Withdrawn too late: booted the release", 6, late_head, 0};
	while (sqlite3_step(s) == SQLITE_ROW) {
		char at[32], found[32], w[24];
		snprintf(w, sizeof(w), "%lld", (long long)sqlite3_column_int64(s, 1) + 1);
		const char *cells[] = {rdb_text(s, 0),
				       w,
				       rdb_text(s, 2),
				       stamp(sqlite3_column_double(s, 3), at, sizeof(at)),
				       stamp(sqlite3_column_double(s, 4), found, sizeof(found)),
				       rdb_text(s, 5)};
		lazy_row(p, &t, cells);
	}
	sqlite3_finalize(s);
	lazy_end(p, &t);
	return 0;
}

static int timeline_section(struct rep *p)
{
	heading(p, 2, "Timeline");
	sqlite3_stmt *s = rdb_query(p->db,
				    "SELECT at, coalesce(wave, -1), coalesce(device_id, ''), kind,"
				    " coalesce(actor, ''), coalesce(detail, '') FROM rollout_events"
				    " WHERE rollout=?1 AND (device_id IS NULL OR kind NOT IN"
				    " ('succeeded')) ORDER BY seq",
				    "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	table_begin(p);
	const char *h[] = {"time (UTC)", "wave", "device", "event", "by", "detail"};
	row(p, true, 6, h);
	while (sqlite3_step(s) == SQLITE_ROW) {
		char t[32], w[24] = "";
		int64_t wave = sqlite3_column_int64(s, 1);
		if (wave >= 0)
			snprintf(w, sizeof(w), "%lld", (long long)wave + 1);
		const char *cells[] = {stamp(sqlite3_column_double(s, 0), t, sizeof(t)),
				       w,
				       rdb_text(s, 2),
				       rdb_text(s, 3),
				       rdb_text(s, 4),
				       rdb_text(s, 5)};
		row(p, false, 6, cells);
	}
	sqlite3_finalize(s);
	table_end(p);
	return 0;
}

static int fleet_section(struct rep *p)
{
	heading(p, 2, "Final state of the targeted devices");
	sqlite3_stmt *s =
	    rdb_query(p->db,
		      "SELECT coalesce(d.version, '?'), coalesce(d.state, 'never reported'),"
		      " count(*) FROM rollout_members m LEFT JOIN devices d ON"
		      " d.id=m.device_id WHERE m.rollout=?1 GROUP BY 1, 2 ORDER BY 3 DESC",
		      "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	table_begin(p);
	const char *h[] = {"version", "state", "devices"};
	row(p, true, 3, h);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *cells[] = {rdb_text(s, 0), rdb_text(s, 1), rdb_text(s, 2)};
		row(p, false, 3, cells);
	}
	sqlite3_finalize(s);
	table_end(p);
	s = rdb_query(p->db,
		      "SELECT m.device_id, coalesce(d.release_id, ''), coalesce(d.version, ''),"
		      " coalesce(d.state, ''), CASE d.online WHEN 1 THEN 'yes' WHEN 0 THEN 'no'"
		      " ELSE '-' END, coalesce(d.last_status, '') FROM rollout_members m LEFT JOIN"
		      " devices d ON d.id=m.device_id WHERE m.rollout=?1 ORDER BY m.device_id",
		      "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	table_begin(p);
	const char *h2[] = {"device", "release", "version", "state", "online", "last error"};
	row(p, true, 6, h2);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *cells[] = {rdb_text(s, 0), rdb_text(s, 1), rdb_text(s, 2),
				       rdb_text(s, 3), rdb_text(s, 4), rdb_text(s, 5)};
		row(p, false, 6, cells);
	}
	sqlite3_finalize(s);
	table_end(p);
	return 0;
}

/* ---- the SVG timeline: a lane per wave (deploying, baking), decisions as markers */

#define SVG_W	  960
#define SVG_LEFT  90
#define SVG_LANE  34
#define SVG_RIGHT 200 /* room for the label after the last bar */

static double svg_x(const struct rep *p, double t)
{
	double span = p->t1 - p->t0 > 1 ? p->t1 - p->t0 : 1;
	return SVG_LEFT + (t - p->t0) / span * (SVG_W - SVG_LEFT - SVG_RIGHT);
}

struct svg_ctx {
	struct rep *p;
	double now;
};

static int svg_wave(void *ctx, const struct rollout_wave_row *w)
{
	struct svg_ctx *c = ctx;
	struct rep *p = c->p;
	double y = 30 + (double)w->wave * SVG_LANE;
	fprintf(p->f, "<text x=\"8\" y=\"%.0f\" class=\"lbl\">wave %lld (%llu)</text>\n", y + 16,
		(long long)w->wave + 1, (unsigned long long)w->c.size);
	if (w->started_at <= 0)
		return 0;
	double end_deploy = w->reported_at > 0 ? w->reported_at
			    : w->gated_at > 0  ? w->gated_at
					       : c->now;
	double x0 = svg_x(p, w->started_at), x1 = svg_x(p, end_deploy);
	fprintf(p->f,
		"<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"20\" class=\"deploy\">"
		"<title>wave %lld deploying until every member reported</title></rect>\n",
		x0, y + 2, x1 - x0 > 2 ? x1 - x0 : 2, (long long)w->wave + 1);
	if (w->reported_at > 0) {
		double bend = w->gated_at > 0 ? w->gated_at : c->now;
		double bx0 = svg_x(p, w->reported_at), bx1 = svg_x(p, bend);
		fprintf(p->f,
			"<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"20\" class=\"bake\">"
			"<title>wave %lld baking</title></rect>\n",
			bx0, y + 2, bx1 - bx0 > 2 ? bx1 - bx0 : 2, (long long)w->wave + 1);
	}
	const char *cls = !strcmp(w->state, "passed")	? "pass"
			  : !strcmp(w->state, "halted") ? "halt"
							: "open";
	fprintf(p->f,
		"<text x=\"%.1f\" y=\"%.0f\" class=\"lbl %s\">%s: %llu ok, %llu failed</text>\n",
		svg_x(p, w->gated_at > 0 ? w->gated_at : c->now) + 4, y + 16, cls, w->state,
		(unsigned long long)w->c.succeeded, (unsigned long long)w->c.failed);
	return 0;
}

static int svg_section(struct rep *p)
{
	struct svg_ctx c = {p, rdb_now()};
	int64_t n_waves = p->r.n_waves;
	double h = 30 + (double)n_waves * SVG_LANE + 60;
	fprintf(p->f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
		"viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"rollout timeline\">\n",
		SVG_W, h, SVG_W, h);
	fprintf(p->f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%.0f\" fill=\"#fafafa\"/>\n",
		SVG_W, h);
	int rc = rollout_waves(p->db, p->r.name, svg_wave, &c);
	if (rc)
		return rc;
	/* Decisions as markers under the lanes; device failures as red ticks on their wave. */
	double base = 30 + (double)n_waves * SVG_LANE + 8;
	sqlite3_stmt *s =
	    rdb_query(p->db,
		      "SELECT at, coalesce(wave, -1), kind, coalesce(detail, ''),"
		      " device_id IS NULL FROM rollout_events WHERE rollout=?1 AND"
		      " (device_id IS NULL OR kind IN ('failed','timed-out')) ORDER BY seq",
		      "t", p->r.name);
	if (!s)
		return TERN_E_DB;
	while (sqlite3_step(s) == SQLITE_ROW) {
		double x = svg_x(p, sqlite3_column_double(s, 0));
		const char *kind = rdb_text(s, 2);
		int64_t wave = sqlite3_column_int64(s, 1);
		if (!sqlite3_column_int(s, 4)) {
			double y = 30 + (double)(wave < 0 ? 0 : wave) * SVG_LANE;
			fprintf(
			    p->f,
			    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"fail\">"
			    "<title>",
			    x, x, y, y + 24);
			esc(p, kind);
			fputs(": ", p->f);
			esc(p, rdb_text(s, 3));
			fputs("</title></line>\n", p->f);
			continue;
		}
		const char *cls =
		    strstr(kind, "paused") || strstr(kind, "failed") || strstr(kind, "abort")
			? "m-bad"
		    : strstr(kind, "approv") || strstr(kind, "resum") ? "m-op"
								      : "m-ok";
		fprintf(p->f, "<circle cx=\"%.1f\" cy=\"%.0f\" r=\"5\" class=\"%s\"><title>", x,
			base + 6, cls);
		esc(p, kind);
		fputs(": ", p->f);
		esc(p, rdb_text(s, 3));
		fputs("</title></circle>\n", p->f);
	}
	sqlite3_finalize(s);
	char t0[32], t1[32];
	fprintf(p->f,
		"<text x=\"%d\" y=\"%.0f\" class=\"axis\">%s</text>\n<text x=\"%d\" y=\"%.0f\" "
		"class=\"axis\" text-anchor=\"end\">%s</text>\n",
		SVG_LEFT, h - 10, stamp(p->t0, t0, sizeof(t0)), SVG_W - SVG_RIGHT, h - 10,
		stamp(p->t1, t1, sizeof(t1)));
	fputs("</svg>\n<p class=\"legend\"><span class=\"k deploy\"></span> deploying "
	      "<span class=\"k bake\"></span> baking <span class=\"k fail\"></span> device "
	      "failed &#9679; decision (hover for details)</p>\n",
	      p->f);
	return 0;
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>tern deployment record</title>\n<style>\n"
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\n"
    "h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\n"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;vertical-align:top}th{background:#f0f0f0}\n"
    "pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap}\n"
    ".deploy{fill:#7aa6d8}.bake{fill:#f0c36b}.fail{stroke:#c0392b;stroke-width:2}\n"
    ".lbl{font-size:12px}.axis{font-size:11px;fill:#666}.pass{fill:#1e7e34}.halt{fill:#c0392b}"
    ".open{fill:#555}\n.m-ok{fill:#1e7e34}.m-bad{fill:#c0392b}.m-op{fill:#2c6fbb}\n"
    ".k{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px}"
    ".k.deploy{background:#7aa6d8}.k.bake{background:#f0c36b}.k.fail{background:#c0392b}\n"
    ".summary{font-size:1.1em;background:#eef4fb;padding:.8em;border-radius:4px;"
    "white-space:pre-line}\n"
    "</style></head><body>\n";

static int write_report(struct rep *p)
{
	const struct rollout *r = &p->r;
	struct totals t = {0};
	char summary[768], buf[512], c0[32];
	int rc = totals(p->db, r->name, &t);
	if (rc)
		return rc;
	summary_lines(r, &t, summary, sizeof(summary));
	double started = 0, ended = 0;
	sqlite3_stmt *s = rdb_query(p->db,
				    "SELECT coalesce(min(at), 0), coalesce(max(at), 0) FROM"
				    " rollout_events WHERE rollout=?1",
				    "t", r->name);
	if (!s)
		return TERN_E_DB;
	if (sqlite3_step(s) == SQLITE_ROW) {
		started = sqlite3_column_double(s, 0);
		ended = sqlite3_column_double(s, 1);
	}
	sqlite3_finalize(s);
	p->t0 = started > 0 ? started : r->created_at;
	p->t1 = !strcmp(r->state, "done") || !strcmp(r->state, "aborted") ? ended : rdb_now();
	if (p->fmt == F_HTML) {
		fputs(html_head, p->f);
		fputs("<h1>Deployment record: ", p->f);
		esc(p, r->name);
		fputs("</h1>\n<div class=\"summary\">", p->f);
		esc(p, summary);
		fputs("</div>\n", p->f);
	} else {
		fprintf(p->f, "# Deployment record: %s\n\n```\n%s\n```\n\n", r->name, summary);
	}
	snprintf(buf, sizeof(buf), "Generated %s by tern from the host database.",
		 stamp(rdb_now(), c0, sizeof(c0)));
	para(p, buf);
	heading(p, 2, "Release");
	snprintf(buf, sizeof(buf), "%s, version %s, sequence %llu.", r->release_id, r->version,
		 (unsigned long long)r->sequence);
	para(p, buf);
	heading(p, 3, "Release notes");
	if (p->fmt == F_HTML) {
		fputs("<pre>", p->f);
		esc(p, r->notes[0] ? r->notes : "(none recorded)");
		fputs("</pre>\n", p->f);
	} else {
		fprintf(p->f, "%s\n\n", r->notes[0] ? r->notes : "(none recorded)");
	}
	plan_section(p);
	heading(p, 2, "Waves");
	if (p->fmt == F_HTML && (rc = svg_section(p)))
		return rc;
	table_begin(p);
	const char *h[] = {"wave",    "state",	 "size",     "succeeded", "failed",
			   "pending", "started", "reported", "gated"};
	row(p, true, 9, h);
	if ((rc = rollout_waves(p->db, r->name, wave_row, p)))
		return rc;
	table_end(p);
	if ((rc = members_section(p)) || (rc = failures_section(p)) || (rc = timeline_section(p)) ||
	    (rc = fleet_section(p)))
		return rc;
	if (p->fmt == F_HTML)
		fputs("</body></html>\n", p->f);
	return 0;
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"out", required_argument, NULL, 'o'},
	    {"summary", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	static struct rep p;
	struct broker_opts bo = {0};
	const char *out = NULL;
	bool summary_only = false;
	int c, rc, status = 1;
	memset(&p, 0, sizeof(p));
	p.fmt = F_MD;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'f') {
			if (!strcmp(optarg, "md"))
				p.fmt = F_MD;
			else if (!strcmp(optarg, "html"))
				p.fmt = F_HTML;
			else
				return host_usage("report", "--format takes md or html");
		} else if (c == 'o') {
			out = optarg;
		} else if (c == 's') {
			summary_only = true;
		} else if (c == 'h') {
			fputs(report_help, stdout);
			return 0;
		} else {
			return host_usage("report", NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage("report", "give the rollout's name");
	if (broker_opts_finish(&bo, false)) {
		status = 2;
		goto out;
	}
	if (db_open(&p.db, broker_opt(&bo, BF_DB)) || rollout_load(p.db, argv[optind], &p.r))
		goto out;
	if (summary_only) {
		struct totals t = {0};
		char summary[768];
		if (totals(p.db, p.r.name, &t))
			goto out;
		summary_lines(&p.r, &t, summary, sizeof(summary));
		printf("%s\n", summary);
		status = 0;
		goto out;
	}
	char tmp[4200];
	if (out) {
		/* Written beside the target and renamed: a reader never sees half a report. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", out);
		p.f = fopen(tmp, "w");
		if (!p.f) {
			host_fail(out, TERN_E_IO);
			goto out;
		}
	} else {
		p.f = stdout;
	}
	rc = write_report(&p);
	if (out) {
		if (fclose(p.f) != 0 && !rc)
			rc = TERN_E_IO;
		if (!rc && rename(tmp, out) != 0)
			rc = TERN_E_IO;
		if (rc) {
			remove(tmp);
			if (rc != TERN_E_DB)
				host_fail(out, rc);
			goto out;
		}
	}
	status = rc ? 1 : 0;
out:
	db_close(p.db);
	broker_opts_free(&bo);
	return status;
}
