/* What `parrots train` shows while it runs: on a terminal one line redrawn in
 * place (epoch, step, running loss and accuracy, images/s, ETA); otherwise one
 * plain line per logging interval. Epoch summaries go to stdout, the rest to
 * stderr. The metrics file gets one JSON object per line, each written whole and
 * flushed, so a reader (or a crash) never sees half a record. */
#define _POSIX_C_SOURCE 200809L
#include "frontends/cli/cli_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Redrawing the terminal line more often than this only costs time. */
#define DRAW_INTERVAL_S 0.1

prt_status cli_progress_init(cli_progress *p, prt_context *ctx, const char *metrics_path, bool quiet,
                             int64_t epochs, int64_t steps_per_epoch, int64_t log_every) {
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->tty = isatty(fileno(stderr)) == 1;
    p->quiet = quiet;
    p->epochs = epochs;
    p->steps_per_epoch = steps_per_epoch;
    p->log_every = log_every > 0 ? log_every : (steps_per_epoch >= 10 ? steps_per_epoch / 10 : 1);
    p->t_start = prt_now();
    p->metrics_path = metrics_path;
    if (metrics_path) {
        p->metrics = fopen(metrics_path, "w");
        if (!p->metrics)
            return prt_error(ctx, PRT_ERR_IO, "--metrics %s: cannot create the file: %s", metrics_path,
                             strerror(errno));
    }
    return PRT_OK;
}

static prt_status metrics_line(cli_progress *p, const char *line) {
    if (!p->metrics) return PRT_OK;
    size_t n = strlen(line);
    if (fwrite(line, 1, n, p->metrics) != n || fflush(p->metrics) != 0)
        return prt_error(p->ctx, PRT_ERR_IO, "--metrics %s: cannot write: %s", p->metrics_path, strerror(errno));
    return PRT_OK;
}

static void fmt_duration(char *b, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(b, cap, "?");
    else if (s < 60) snprintf(b, cap, "%.0fs", s);
    else if (s < 3600) snprintf(b, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(b, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

void cli_progress_break(cli_progress *p) {
    if (p->tty && p->t_drawn > 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->t_drawn = 0;
    }
}

void cli_progress_epoch_start(cli_progress *p, int64_t epoch) {
    (void)epoch;
    p->ep_loss = 0;
    p->ep_steps = p->ep_correct = p->ep_seen = 0;
    p->ep_train_s = 0;
    p->ep_t0 = p->iv_t0 = prt_now();
    p->iv_loss = 0;
    p->iv_steps = p->iv_seen = 0;
}

/* Grows arrays that share one capacity so each holds `need` entries. */
static bool grow_all(prt_context *ctx, double **const *arrs, int n, int *cap, int need) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 64;
    for (int k = 0; k < n; k++) {
        double *na = prt_realloc(ctx, *arrs[k], sizeof(double) * (size_t)*cap, sizeof(double) * (size_t)nc);
        if (!na) return false;
        *arrs[k] = na;
    }
    *cap = nc;
    return true;
}

prt_status cli_progress_step(cli_progress *p, int64_t epoch, int64_t step, double loss, int64_t correct, int64_t n,
                             double lr) {
    double now = prt_now();
    p->ep_loss += loss;
    p->ep_steps++;
    p->ep_correct += correct;
    p->ep_seen += n;
    p->iv_loss += loss;
    p->iv_steps++;
    p->iv_seen += n;
    int64_t global = (epoch - 1) * p->steps_per_epoch + step, total = p->epochs * p->steps_per_epoch;
    bool record = step % p->log_every == 0 || step == p->steps_per_epoch;
    double ep_rate = p->ep_seen / fmax(now - p->ep_t0, 1e-9);

    if (p->tty && !p->quiet && (now - p->t_drawn >= DRAW_INTERVAL_S || step == p->steps_per_epoch)) {
        char eta[32];
        double per_step = (now - p->t_start) / (double)global;
        fmt_duration(eta, sizeof eta, per_step * (double)(total - global));
        fprintf(stderr, "\r\033[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.3f  %.0f img/s  ETA %s",
                (long long)epoch, (long long)p->epochs, (long long)step, (long long)p->steps_per_epoch,
                p->ep_loss / (double)p->ep_steps, (double)p->ep_correct / (double)p->ep_seen, ep_rate, eta);
        fflush(stderr);
        p->t_drawn = now;
    }
    if (!record) return PRT_OK;
    double iv_mean = p->iv_loss / (double)p->iv_steps, iv_rate = p->iv_seen / fmax(now - p->iv_t0, 1e-9);
    if (!p->tty && !p->quiet)
        fprintf(stderr, "epoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.3f  lr %.4g  %.0f img/s\n",
                (long long)epoch, (long long)p->epochs, (long long)step, (long long)p->steps_per_epoch, iv_mean,
                (double)p->ep_correct / (double)p->ep_seen, lr, iv_rate);
    char line[512];
    snprintf(line, sizeof line,
             "{\"type\":\"step\",\"epoch\":%lld,\"step\":%lld,\"global_step\":%lld,\"loss\":%.9g,\"lr\":%.9g,"
             "\"images_per_s\":%.1f,\"elapsed_s\":%.3f}\n",
             (long long)epoch, (long long)step, (long long)global, iv_mean, lr, iv_rate, now - p->t_start);
    PRT_CHECK(metrics_line(p, line));
    double **const steps[2] = {&p->step_x, &p->step_loss};
    if (!grow_all(p->ctx, steps, 2, &p->cap_steps, p->n_steps + 1))
        return prt_error(p->ctx, PRT_ERR_NOMEM, "out of memory");
    p->step_x[p->n_steps] = (double)global / (double)p->steps_per_epoch;
    p->step_loss[p->n_steps++] = iv_mean;
    p->iv_loss = 0;
    p->iv_steps = p->iv_seen = 0;
    p->iv_t0 = prt_now();
    return PRT_OK;
}

void cli_progress_train_done(cli_progress *p) { p->ep_train_s = prt_now() - p->ep_t0; }

prt_status cli_progress_epoch_end(cli_progress *p, int64_t epoch, double test_loss, double test_acc, double lr) {
    double now = prt_now(), elapsed = now - p->t_start;
    double train_loss = p->ep_steps ? p->ep_loss / (double)p->ep_steps : NAN;
    double train_acc = p->ep_seen ? (double)p->ep_correct / (double)p->ep_seen : NAN;
    double rate = p->ep_seen / fmax(p->ep_train_s, 1e-9);
    cli_progress_break(p);
    printf("epoch %lld/%lld  train_loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  %.0f img/s  "
           "elapsed %.1f s\n",
           (long long)epoch, (long long)p->epochs, train_loss, train_acc, test_loss, test_acc, rate, elapsed);
    fflush(stdout);
    char line[512];
    snprintf(line, sizeof line,
             "{\"type\":\"epoch\",\"epoch\":%lld,\"train_loss\":%.9g,\"train_acc\":%.9g,\"test_loss\":%.9g,"
             "\"test_acc\":%.9g,\"lr\":%.9g,\"images_per_s\":%.1f,\"epoch_s\":%.3f,\"elapsed_s\":%.3f}\n",
             (long long)epoch, train_loss, train_acc, test_loss, test_acc, lr, rate, p->ep_train_s, elapsed);
    PRT_CHECK(metrics_line(p, line));
    double **const eps[4] = {&p->ep_train_loss, &p->ep_test_loss, &p->ep_train_acc, &p->ep_test_acc};
    if (!grow_all(p->ctx, eps, 4, &p->cap_epochs, p->n_epochs + 1))
        return prt_error(p->ctx, PRT_ERR_NOMEM, "out of memory");
    p->ep_train_loss[p->n_epochs] = train_loss;
    p->ep_test_loss[p->n_epochs] = test_loss;
    p->ep_train_acc[p->n_epochs] = train_acc;
    p->ep_test_acc[p->n_epochs++] = test_acc;
    return PRT_OK;
}

void cli_progress_curves(const cli_progress *p, const char *title, cli_curves *out) {
    *out = (cli_curves){
        .title = title,
        .epochs = p->epochs,
        .n_steps = p->n_steps,
        .step_x = p->step_x,
        .step_loss = p->step_loss,
        .n_epochs = p->n_epochs,
        .ep_train_loss = p->ep_train_loss,
        .ep_test_loss = p->ep_test_loss,
        .ep_train_acc = p->ep_train_acc,
        .ep_test_acc = p->ep_test_acc,
    };
}

void cli_progress_close(cli_progress *p) {
    cli_progress_break(p);
    if (p->metrics) fclose(p->metrics);
    prt_free(p->ctx, p->step_x, 0);
    prt_free(p->ctx, p->step_loss, 0);
    prt_free(p->ctx, p->ep_train_loss, 0);
    prt_free(p->ctx, p->ep_test_loss, 0);
    prt_free(p->ctx, p->ep_train_acc, 0);
    prt_free(p->ctx, p->ep_test_acc, 0);
    memset(p, 0, sizeof *p);
}
