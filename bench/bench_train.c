/* bench_train: times training steps of this engine on the benchmark shapes (bench/README.md), on the CPU or
 * the GPU, with fp32 or bf16 matrix products and bf16 activations or not (--dtype fp32, bf16, bf16-act:
 * engine/ops.h's ops_precision), with or without
 * activation recomputation (--recompute), and prints one JSON line: step time, tokens/s, the step's matmul
 * FLOPs, GFLOP/s (on the CPU against this machine's sgemm peak), peak RSS. --plan prints the step's memory
 * plan instead (engine/llava_plan.h), without building anything: a 13B budget can be read on any machine.
 * With --plan: --projector trains the projector in full too (unlearning's target proj+llm); --reference adds
 * GA+KLR / NPO's reference as the unlearn stage holds it by default (round_start: shared weights, its logits
 * and the start values of what trains in full), --reference-model a second frozen model (reference
 * "original"). */
#include "bench/prof_ops.h"
#include "engine/blas_tune.h"
#include "engine/config.h"
#include "engine/device.h"
#include "engine/llava.h"
#include "engine/llava_plan.h"
#include "engine/lora.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/train.h"
#include "util/err.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define IMAGE_TOKEN 4
#define LORA_TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

/* One benchmark shape: the model (a LlavaConfig JSON, shared with torch_train.py), the batch, and whether the
 * step trains everything or a LoRA adapter (rank r, alpha 2r, dropout 0.05) on the decoder's projections.
 * "7b" and "13b" are LLaVA-1.5's: CLIP ViT-L/14-336 (23 of its 24 layers: LLaVA takes the second-to-last
 * layer's output, and with vision_feature_layer -1 the 23 layers that count are all that run), Vicuna 7B /
 * 13B, 704 tokens a row (BOS, 576 image tokens, 127 text), and LLaVA-1.5's LoRA recipe (r 128, alpha 256,
 * dropout 0.05). */
struct shape {
    const char *name;
    int vh, vi, vl, vheads, image, patch; /* vision tower */
    int h, im, layers, heads, kv, vocab;  /* decoder */
    int batch, seq, lora_r;
};

static const struct shape shapes[] = {
    {"tiny", 128, 512, 2, 4, 32, 4, 256, 688, 4, 4, 4, 1700, 8, 96, 0},
    {"world", 64, 256, 2, 2, 64, 16, 128, 344, 4, 4, 4, 999, 16, 40, 0},
    {"100m", 256, 1024, 2, 4, 64, 8, 768, 2048, 12, 12, 12, 32000, 4, 256, 16},
    {"7b", 1024, 4096, 23, 16, 336, 14, 4096, 11008, 32, 32, 32, 32064, 4, 704, 128},
    {"13b", 1024, 4096, 23, 16, 336, 14, 5120, 13824, 40, 40, 40, 32064, 4, 704, 128},
};

/* vision_feature_layer -1: the last layer's output, so both frameworks run exactly the layers that count. */
static char *config_json(const struct shape *s) {
    char *t = malloc(2048);
    snprintf(t, 2048,
             "{\"model_type\": \"llava\", \"image_token_index\": %d, \"pad_token_id\": 0,"
             " \"projector_hidden_act\": \"gelu\", \"vision_feature_layer\": -1,"
             " \"vision_feature_select_strategy\": \"default\", \"tie_word_embeddings\": false,"
             " \"text_config\": {\"model_type\": \"llama\", \"hidden_size\": %d, \"intermediate_size\": %d,"
             " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,"
             " \"vocab_size\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-06,"
             " \"tie_word_embeddings\": false},"
             " \"vision_config\": {\"model_type\": \"clip_vision_model\", \"hidden_size\": %d,"
             " \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,"
             " \"image_size\": %d, \"patch_size\": %d, \"num_channels\": 3, \"projection_dim\": %d}}\n",
             IMAGE_TOKEN, s->h, s->im, s->layers, s->heads, s->kv, s->vocab, s->seq, s->vh, s->vi, s->vl,
             s->vheads, s->image, s->patch, s->vh);
    return t;
}

static int is_norm_weight(const char *name) {
    size_t n = strlen(name);
    const char *end = n > 7 ? name + n - 7 : name;
    return strcmp(end, ".weight") == 0 && (strstr(name, "norm") || strstr(name, "layrnorm"));
}

/* Random weights: value e of parameter tensor i is uniform +-0.02 drawn from rng_key(1234, i) at counter e
 * (norm weights 1), a pure function of (i, e), so the split over threads does not change a bit. The model is
 * built blank and filled in place: a safetensors image of a 13B model would double its memory. On the GPU the
 * values are drawn into a host staging buffer a chunk at a time and copied over (ops->copy), so the weights
 * never migrate between host and device pages. The buffer is plain heap memory, which only the copy's source
 * may be (both backends copy with memmove / cudaMemcpyDefault); PULSE_CHECK_OPS would refuse it, so the
 * benchmark is not run checked. */
#define FILL_CHUNK ((size_t)1 << 26) /* floats per staging round (256 MB) */

struct fill {
    const struct llava *m;
    float *dst;    /* where params[lo] goes */
    size_t lo, hi; /* this thread's range of m->params */
};

static void *fill_worker(void *arg) {
    const struct fill *f = arg;
    for (size_t i = 0; i < f->m->nptab; i++) {
        const struct llava_tensor *t = &f->m->ptab[i];
        size_t lo = t->offset > f->lo ? t->offset : f->lo,
               hi = t->offset + t->n < f->hi ? t->offset + t->n : f->hi;
        if (lo >= hi)
            continue;
        uint64_t key = rng_key(1234, i);
        int norm = is_norm_weight(t->name);
        for (size_t e = lo - t->offset; e < hi - t->offset; e++)
            f->dst[t->offset + e - f->lo] = norm ? 1.0f : (rng_uniform(key, e) * 2.0f - 1.0f) * 0.02f;
    }
    return NULL;
}

/* params[lo, hi) into dst, split over `threads` threads. */
static void fill_range(const struct llava *m, float *dst, size_t lo, size_t hi, int threads) {
    pthread_t th[64];
    struct fill f[64];
    int joined[64];
    size_t per = (hi - lo + (size_t)threads - 1) / (size_t)threads;
    for (int k = 0; k < threads; k++) {
        size_t a = lo + per * (size_t)k, b = a + per;
        a = a < hi ? a : hi;
        b = b < hi ? b : hi;
        f[k] = (struct fill){.m = m, .dst = dst + (a - lo), .lo = a, .hi = b};
        joined[k] = pthread_create(&th[k], NULL, fill_worker, &f[k]) == 0;
        if (!joined[k])
            fill_worker(&f[k]); /* no thread to be had: this range on the calling thread */
    }
    for (int k = 0; k < threads; k++)
        if (joined[k])
            pthread_join(th[k], NULL);
}

static int model_random(struct llava *m, const struct ops *ops, const struct llava_config *cfg, size_t B,
                        size_t T, int threads) {
    if (llava_init_blank(m, cfg, B, T) < 0)
        return -1;
    if (strcmp(ops->name, "cuda") != 0) {
        fill_range(m, m->params, 0, m->nparams, threads);
        return 0;
    }
    float *stage = malloc(FILL_CHUNK * sizeof(float));
    if (!stage)
        return err_set("bench_train: out of memory for the staging buffer");
    for (size_t lo = 0; lo < m->nparams; lo += FILL_CHUNK) {
        size_t hi = lo + FILL_CHUNK < m->nparams ? lo + FILL_CHUNK : m->nparams;
        fill_range(m, stage, lo, hi, threads);
        ops->copy(m->params + lo, stage, hi - lo);
    }
    free(stage);
    return 0;
}

/* ---- FLOPs: every matmul of the step counted explicitly (2 per multiply-add); nothing else is counted. */

struct flops {
    double fwd, bwd;
};

/* A linear over n rows; the backward computes dx when dx, dW when dw. */
static void lin(struct flops *f, double n, double ic, double oc, int dx, int dw) {
    double one = 2.0 * n * ic * oc;
    f->fwd += one;
    f->bwd += one * (dx + dw);
}

/* A LoRA term of rank r: forward x A^T then h B^T; backward dB, dh, dA, dx (twice the forward). */
static void lora_term(struct flops *f, double n, double ic, double oc, double r) {
    double one = 2.0 * n * r * (ic + oc);
    f->fwd += one;
    f->bwd += 2.0 * one;
}

/* Attention over b sequences of t tokens, width c: QK^T and PV in full (causal halves are not subtracted);
 * the backward has four products of that size. */
static void attn(struct flops *f, double b, double t, double c, int bwd) {
    double one = 2.0 * b * t * t * c;
    f->fwd += 2.0 * one;
    f->bwd += bwd ? 4.0 * one : 0.0;
}

static double step_flops(const struct llava_config *c, size_t B, size_t T, int lora_r) {
    const struct vision_config *v = &c->vision;
    const struct text_config *x = &c->text;
    struct flops f = {0, 0};
    int full = lora_r == 0; /* full step: every weight trains; LoRA: the base and the image side are frozen */
    double ni = (double)B, p = c->patches, s = p + 1, nv = ni * s, ch = v->hidden, n = (double)B * T;
    lin(&f, ni * p, v->channels * v->patch_size * v->patch_size, ch, 0, full);
    for (int l = 0; l < v->layers_used; l++) {
        for (int k = 0; k < 4; k++)
            lin(&f, nv, ch, ch, full, full);
        attn(&f, ni, s, ch, full);
        lin(&f, nv, ch, v->intermediate, full, full);
        lin(&f, nv, v->intermediate, ch, full, full);
    }
    lin(&f, ni * p, ch, x->hidden, full, full);
    lin(&f, ni * p, x->hidden, x->hidden, full, full);
    double h = x->hidden, kv = h / x->heads * x->kv_heads, im = x->intermediate;
    double shapes[LLAVA_NPROJ][2] = {{h, h}, {h, kv}, {h, kv}, {h, h}, {h, im}, {h, im}, {im, h}};
    for (int l = 0; l < x->layers; l++) {
        for (int k = 0; k < LLAVA_NPROJ; k++) {
            lin(&f, n, shapes[k][0], shapes[k][1], 1, full);
            if (!full)
                lora_term(&f, n, shapes[k][0], shapes[k][1], lora_r);
        }
        attn(&f, (double)B, (double)T, h, 1);
    }
    lin(&f, n, h, x->vocab, 1, full);
    return f.fwd + f.bwd;
}

/* ---- sgemm peak: `threads` threads each running single-threaded 2048^3 sgemm at once, as the engine's pool
 * runs its blocks; the best of 3 rounds. */

#define PEAK_N 2048

static void *peak_worker(void *arg) {
    float *a = arg, *b = a + PEAK_N * PEAK_N, *c = b + PEAK_N * PEAK_N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a, PEAK_N, b, PEAK_N,
                0.0f, c, PEAK_N);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_peak(int threads) {
    size_t per = 3u * PEAK_N * PEAK_N;
    float *buf = malloc(per * (size_t)threads * sizeof(float));
    for (size_t i = 0; i < per * (size_t)threads; i++)
        buf[i] = rng_uniform(7, i) - 0.5f;
    pthread_t th[64];
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, peak_worker, buf + per * (size_t)i);
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    free(buf);
    return 2.0 * PEAK_N * PEAK_N * (double)PEAK_N * threads / best / 1e9;
}

/* ---- the batch: every row BOS, the image's tokens, then random text; labels on the text only. */

struct batch {
    int32_t *ids, *mask, *labels;
    float *pixels;
};

static void batch_make(struct batch *b, const struct llava_config *c, size_t B, size_t T) {
    size_t np = (size_t)c->vision.channels * (size_t)c->vision.image_size * (size_t)c->vision.image_size;
    b->ids = malloc(B * T * sizeof(int32_t));
    b->mask = malloc(B * T * sizeof(int32_t));
    b->labels = malloc(B * T * sizeof(int32_t));
    b->pixels = malloc(B * np * sizeof(float));
    for (size_t i = 0; i < B * T; i++) {
        size_t j = i % T;
        int img = j >= 1 && j <= (size_t)c->patches;
        int32_t text = 5 + (int32_t)(rng_u64(11, i) % (uint64_t)(c->text.vocab - 5));
        b->ids[i] = j == 0 ? 1 : img ? IMAGE_TOKEN : text;
        b->mask[i] = 1;
        b->labels[i] = j == 0 || img ? TRAIN_IGNORE : b->ids[i];
    }
    for (size_t i = 0; i < B * np; i++)
        b->pixels[i] = rng_uniform(13, i) * 2.0f - 1.0f;
}

static void batch_free(struct batch *b) {
    free(b->ids);
    free(b->mask);
    free(b->labels);
    free(b->pixels);
}

/* ---- the run */

struct opts {
    const struct shape *s;
    int threads, steps, warmup, profile, flops, recompute, plan, reference, reference_model, projector;
    double gpu_gib; /* --plan: the GPU's memory to compare with (0: the device's own, when there is one) */
    const char *dump, *device, *dtype;
};

/* The flags without a value; 0 when a is not one of them. */
static int flag(const char *a, struct opts *o) {
    int *f = strcmp(a, "--profile") == 0           ? &o->profile
             : strcmp(a, "--flops") == 0           ? &o->flops
             : strcmp(a, "--recompute") == 0       ? &o->recompute
             : strcmp(a, "--plan") == 0            ? &o->plan
             : strcmp(a, "--reference") == 0       ? &o->reference
             : strcmp(a, "--reference-model") == 0 ? &o->reference_model
             : strcmp(a, "--projector") == 0       ? &o->projector
                                                   : NULL;
    if (f)
        *f = 1;
    return f != NULL;
}

static int parse(int argc, char **argv, struct opts *o) {
    *o = (struct opts){
        .s = &shapes[0], .threads = 2, .steps = 5, .warmup = 1, .device = "cpu", .dtype = "fp32"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (flag(a, o))
            continue;
        if (!v)
            return err_set("bench_train: %s needs a value", a);
        if (strcmp(a, "--shape") == 0) {
            o->s = NULL;
            for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
                if (strcmp(v, shapes[k].name) == 0)
                    o->s = &shapes[k];
            if (!o->s)
                return err_set("bench_train: unknown shape '%s' (tiny, world, 100m, 7b, 13b)", v);
        } else if (strcmp(a, "--threads") == 0)
            o->threads = atoi(v);
        else if (strcmp(a, "--steps") == 0)
            o->steps = atoi(v);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = atoi(v);
        else if (strcmp(a, "--dump-config") == 0)
            o->dump = v;
        else if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--dtype") == 0)
            o->dtype = v;
        else if (strcmp(a, "--gpu-gib") == 0)
            o->gpu_gib = atof(v);
        else
            return err_set("bench_train: unknown option %s", a);
        i++;
    }
    if (o->threads < 1 || o->threads > 64 || o->steps < 1 || o->warmup < 0 || !(o->gpu_gib >= 0))
        return err_set("bench_train: threads 1..64, steps >= 1, warmup >= 0, gpu-gib >= 0");
    if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0)
        return err_set("bench_train: unknown device '%s' (cpu, cuda)", o->device);
    if (strcmp(o->dtype, "fp32") != 0 && strcmp(o->dtype, "bf16") != 0 && strcmp(o->dtype, "bf16-act") != 0)
        return err_set("bench_train: unknown dtype '%s' (fp32, bf16, bf16-act)", o->dtype);
    return 0;
}

static int dump_config(const char *path, const char *json) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(json, f) < 0 || fclose(f) != 0)
        return err_set("bench_train: cannot write %s", path);
    return 0;
}

/* Sets up what trains: everything, or a fresh LoRA adapter (PEFT's initialisation) on the 7 projections. */
static int trainable(struct llava *m, struct lora *l, int r) {
    if (r == 0) {
        llava_set_trainable(m, "", 1);
    } else {
        if (lora_create(l, r, 2.0 * r, 0.05) < 0)
            return -1;
        lora_set_target_regex(l, LORA_TARGETS);
        if (llava_lora_add_targets(m, l) < 0)
            return -1;
        lora_init(l, 42);
        if (llava_lora_attach(m, l, 42) < 0)
            return -1;
    }
    llava_grads_init(m);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linux keeps the peak RSS; writing 5 to clear_refs resets it to the current RSS, so what the setup freed
 * (the sgemm peak's buffers) does not count. Returns 0 when the kernel refused (the peak then includes it).
 */
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* The GPU's name for the JSON line: device_describe's text with anything JSON would need escaped dropped. */
static void gpu_name(const struct opts *o, char *out, size_t cap) {
    char d[512];
    if (device_describe(o->device, o->threads, d, sizeof d) != 0)
        snprintf(d, sizeof d, "?");
    size_t j = 0;
    for (size_t i = 0; d[i] && j + 1 < cap; i++)
        if (d[i] != '"' && d[i] != '\\' && (unsigned char)d[i] >= 0x20)
            out[j++] = d[i];
    out[j] = 0;
}

static int run(const struct opts *o, const struct llava_config *cfg) {
    const struct shape *s = o->s;
    size_t B = (size_t)s->batch, T = (size_t)s->seq;
    int cuda = strcmp(o->device, "cuda") == 0;
    /* before the model: selecting the device switches engine/mem.c to that device's memory */
    const struct ops *base = ops_select(o->device, o->threads);
    if (!base)
        return -1;
    /* the step's table: bf16 products (both inputs rounded, fp32 accumulation) or fp32; the model is built
     * and filled with base, the device's own table */
    const struct ops *step_ops = ops_precision(base, o->dtype);
    if (!step_ops)
        return -1;
    double peak = cuda ? 0.0 : sgemm_peak(o->threads); /* the CPU's sgemm says nothing about a GPU */
    double t_init = now();
    struct llava m;
    if (model_random(&m, base, cfg, B, T, o->threads) < 0)
        return -1;
    llava_set_recompute(&m, o->recompute); /* before the first forward makes the activation block */
    llava_set_act_bf16(&m, ops_takes_bf16(step_ops));
    struct lora l = {0};
    struct train_adamw opt;
    if (trainable(&m, &l, s->lora_r) < 0) {
        llava_free(&m);
        lora_free(&l);
        return -1;
    }
    train_adamw_init(&opt, &m, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f);
    t_init = now() - t_init;
    int reset = reset_peak_rss();
    struct batch b;
    batch_make(&b, cfg, B, T);
    const struct ops *ops = step_ops;
    double *dt = calloc((size_t)o->steps, sizeof *dt), total = 0.0;
    float loss = 0;
    int rc = 0;
    for (int i = 0; i < o->warmup + o->steps && rc == 0; i++) {
        if (o->profile && i == o->warmup)
            ops = prof_ops(step_ops); /* counts the measured steps only */
        /* train_step ends with ops sync (train_adamw_step's), so the host clock times the GPU's work too */
        double t0 = now();
        rc = train_step(&m, &opt, ops, b.ids, b.mask, b.labels, B, T, b.pixels, B, 1e-4f, &loss);
        if (i >= o->warmup)
            total += dt[i - o->warmup] = now() - t0;
    }
    if (rc == 0 && o->profile)
        prof_report(stderr, o->steps, total);
    if (rc == 0) {
        qsort(dt, (size_t)o->steps, sizeof *dt, cmp_double);
        double med = dt[o->steps / 2], fl = step_flops(cfg, B, T, s->lora_r);
        size_t trained = s->lora_r ? m.lora.ngrads : m.ngrads;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        char peak_s[32], dev[600];
        if (cuda) {
            snprintf(peak_s, sizeof peak_s, "null");
            char name[512];
            gpu_name(o, name, sizeof name);
            snprintf(dev, sizeof dev, "\"cuda\", \"gpu\": \"%s\"", name);
        } else {
            snprintf(peak_s, sizeof peak_s, "%.1f", peak);
            snprintf(dev, sizeof dev, "\"cpu\"");
        }
        printf(
            "{\"impl\": \"engine\", \"shape\": \"%s\", \"device\": %s, \"dtype\": \"%s\", \"threads\": %d,"
            " \"recompute\": %d, \"batch\": %zu, \"seq\": %zu, \"params\": %zu, \"trainable\": %zu,"
            " \"step_ms\": %.2f, \"tok_s\": %.0f, \"gflop_step\": %.3f, \"gflops\": %.1f,"
            " \"peak_gflops\": %s, \"maxrss_mb\": %.0f, \"rss_reset\": %d, \"init_s\": %.2f, \"steps\": %d,"
            " \"warmup\": %d, \"loss\": %.4f}\n",
            s->name, dev, o->dtype, o->threads, o->recompute, B, T, m.nparams, trained, med * 1e3,
            (double)(B * T) / med, fl / 1e9, fl / med / 1e9, peak_s, (double)ru.ru_maxrss / 1024.0, reset,
            t_init, o->steps, o->warmup, loss);
    }
    free(dt);
    batch_free(&b);
    train_adamw_free(&opt);
    llava_free(&m);
    lora_free(&l);
    return rc;
}

/* --flops: what a driver script needs before any run (bench/gpu.sh): the step's batch, LoRA rank and FLOPs.
 */
static void print_flops(const struct shape *s, const struct llava_config *cfg) {
    double fl = step_flops(cfg, (size_t)s->batch, (size_t)s->seq, s->lora_r);
    printf("{\"impl\": \"flops\", \"shape\": \"%s\", \"batch\": %d, \"seq\": %d, \"lora_r\": %d, "
           "\"gflop_step\": %.3f}\n",
           s->name, s->batch, s->seq, s->lora_r, fl / 1e9);
}

/* --plan's title: the step, then what --projector and --reference(-model) add. */
static void plan_title(const struct opts *o) {
    const struct shape *s = o->s;
    char what[64];
    snprintf(what, sizeof what, s->lora_r ? "LoRA r %d on q/k/v/o/gate/up/down" : "every parameter trains",
             s->lora_r);
    const char *ref = o->reference_model ? ", with a reference model (GA+KLR, NPO; reference \"original\")"
                      : o->reference ? ", with the shared reference (GA+KLR, NPO; reference \"round_start\")"
                                     : "";
    printf("%s: %s%s, batch %d x %d, %s, recompute %s, %s%s\n", s->name, what,
           s->lora_r && o->projector ? " + the projector" : "", s->batch, s->seq, o->dtype,
           o->recompute ? "on" : "off", o->device, ref);
}

/* --plan: what the step's setup (trainable(), train_adamw_init, train_step) holds, from the size tables. */
static int print_plan(const struct opts *o, const struct llava_config *cfg) {
    const struct shape *s = o->s;
    struct lora l = {0};
    struct llava_plan_opts po = {.B = (size_t)s->batch,
                                 .T = (size_t)s->seq,
                                 .train = 1,
                                 .trainable = !s->lora_r     ? ""
                                              : o->projector ? "model.multi_modal_projector."
                                                             : NULL,
                                 .recompute = o->recompute,
                                 .reference = o->reference_model ? LLAVA_PLAN_REF_MODEL
                                              : o->reference     ? LLAVA_PLAN_REF_SHARED
                                                                 : LLAVA_PLAN_REF_NONE,
                                 .precision = o->dtype,
                                 .device = o->device};
    if (s->lora_r) {
        if (lora_create(&l, s->lora_r, 2.0 * s->lora_r, 0.05) < 0)
            return -1;
        lora_set_target_regex(&l, LORA_TARGETS);
        po.lora = &l;
    }
    struct llava_plan p;
    int rc = llava_memory_plan(cfg, &po, &p);
    lora_free(&l);
    if (rc < 0)
        return -1;
    size_t gpu = o->gpu_gib > 0 ? (size_t)(o->gpu_gib * 1073741824.0) : llava_plan_device_bytes(o->device);
    plan_title(o);
    llava_plan_print(stdout, &p, "  ", strcmp(o->device, "cuda") == 0 ? gpu : 0);
    return 0;
}

int main(int argc, char **argv) {
    blas_tune_reexec(argv); /* the kernels pulse-pipe runs with, not OpenBLAS's generic fallback */
    struct opts o;
    struct llava_config cfg;
    if (parse(argc, argv, &o) < 0) {
        fprintf(stderr, "%s\n", err_msg());
        return 2;
    }
    char *json = config_json(o.s);
    int rc = config_parse(json, strlen(json), "bench config", &cfg);
    if (rc == 0 && o.dump)
        rc = dump_config(o.dump, json);
    if (rc == 0 && o.flops)
        print_flops(o.s, &cfg);
    else if (rc == 0 && o.plan)
        rc = print_plan(&o, &cfg);
    else if (rc == 0 && !o.dump)
        rc = run(&o, &cfg);
    free(json);
    if (rc < 0)
        fprintf(stderr, "bench_train: %s\n", err_msg());
    return rc < 0 ? 1 : 0;
}
