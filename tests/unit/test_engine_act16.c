/* test_engine_act16: bf16 storage (engine/mem.h mem_alloc_bf16) and the tables that take it (engine/act16.h,
 * ops_precision "bf16-act") on the CPU.
 *
 * - Storage: a range resolves to its values (start, middle, end), other pointers do not, it costs 2 bytes a
 *   value in mem_in_use, mem_free returns them.
 * - Every operation: its definition (engine/act16.c) computed here another way. Inputs are bf16 values; the
 *   reference runs the inner table ("cpu-bf16") on plain fp32 arrays and rounds, on the host, each output
 *   that the other run keeps in bf16 storage; the other run passes the "cpu-bf16-act" table bf16 ranges
 *   (all tensor arguments, then every other one: fp32 and bf16 mixed in one call) and reads them back.
 *   Both must agree bit for bit on every argument, read or written (an argument read as the wrong extent,
 *   written but not rounded back, or rounded twice fails).
 * - The tiny LLaVA with a LoRA adapter, activations in bf16 (llava_set_act_bf16): forward and backward near
 *   the bf16-products run and not equal to it, the same bits on 1 and 2 threads, the activation block
 *   halved but for the fp32 rows, a table that does not take bf16 storage refused with one line; and the
 *   memory plan's activation and scratch blocks equal to what the model allocates.
 * - How far one-ulp differences in the reductions (another backend's summation order) move a bf16-act run:
 *   the CUDA parity test's model tolerances rest on it. */
#include "check.h"
#include "llava_batch.h"
#include "engine/act16.h"
#include "engine/kernels.h"
#include "engine/llava.h"
#include "engine/llava_plan.h"
#include "engine/lora.h"
#include "engine/mem.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/train.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- storage ---- */

static void test_storage(void) {
    size_t before = mem_in_use();
    float *r = mem_alloc_bf16(1000);
    CHECK(mem_in_use() - before == 1000 * sizeof(uint16_t));
    size_t avail = 0;
    uint16_t *s0 = mem_bf16_at(r, &avail);
    CHECK(s0 && avail == 1000);
    CHECK(mem_bf16_at(r + 999, &avail) == s0 + 999 && avail == 1);
    CHECK(mem_bf16_at(r + 1000, &avail) == s0 + 1000 && avail == 0); /* the end: an empty extent */
    CHECK(mem_bf16_at(r + 1001, NULL) == NULL && mem_bf16_at(r - 1, NULL) == NULL);
    float *plain = mem_alloc(10, sizeof(float));
    CHECK(mem_bf16_at(plain, NULL) == NULL && mem_bf16_at(NULL, NULL) == NULL);
    int zero = 1;
    for (size_t i = 0; i < 1000; i++)
        zero &= s0[i] == 0;
    CHECK(zero);
    mem_free(plain);
    mem_free(r);
    CHECK(mem_in_use() == before && mem_bf16_at(r, NULL) == NULL);
}

/* ---- every operation against its definition ---- */

#define MAXARG 8

/* One case: the tensor arguments' sizes and value ranges, and the call that passes them (a[i]) to a table. */
struct opcase {
    const char *name;
    int nargs;
    size_t n[MAXARG];
    float lo[MAXARG], hi[MAXARG]; /* 0, 0: [-1, 1) */
    void (*call)(const struct ops *o, float **a);
};

/* Integer arguments the calls share: token ids, positions, lengths, targets, a mask, all host memory from
 * mem_alloc (as the model's token block is). */
static int32_t *tok, *pos, *len, *tgt;
static uint8_t *msk;
static const struct ops_dropout drop = {0x5eed, 0.25f, 1.0f / 0.75f};
static double ss_got;

/* Shapes: n rows of ic -> oc; attention b x t, nh heads of hs; v vocabulary; kvh heads repeated rep times. */
enum { N = 10, IC = 12, OC = 7, B = 2, T = 5, NH = 2, HS = 4, V = 9, KVH = 1, REP = 2, CAP = 6, R = 3 };

static void c_mm_f(const struct ops *o, float **a) {
    o->matmul_forward(a[0], a[1], a[2], a[3], N, IC, OC);
}
static void c_mm_b(const struct ops *o, float **a) {
    o->matmul_backward(a[0], a[1], a[2], a[3], a[4], a[5], N, IC, OC);
}
static void c_mm_b_dinp(const struct ops *o, float **a) {
    o->matmul_backward(a[0], NULL, NULL, a[1], a[2], a[3], N, IC, OC);
}
static void c_mms_f(const struct ops *o, float **a) {
    o->matmul_scaled_forward(a[0], a[1], a[2], 0.75f, N, IC, OC);
}
static void c_mms_b(const struct ops *o, float **a) {
    o->matmul_scaled_backward(a[0], a[1], a[2], a[3], a[4], 0.75f, N, IC, OC);
}
static void c_ln_f(const struct ops *o, float **a) {
    o->layernorm_forward(a[0], a[1], a[2], a[3], a[4], a[5], N, IC, 1e-5f);
}
static void c_ln_b(const struct ops *o, float **a) {
    o->layernorm_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], N, IC);
}
static void c_rms_f(const struct ops *o, float **a) {
    o->rmsnorm_forward(a[0], a[1], a[2], a[3], N, IC, 1e-5f);
}
static void c_rms_b(const struct ops *o, float **a) {
    o->rmsnorm_backward(a[0], a[1], a[2], a[3], a[4], a[5], N, IC);
}
static void c_rope_f(const struct ops *o, float **a) {
    o->rope_forward(a[0], pos, B, T, NH, HS, 10000.0f);
}
static void c_rope_b(const struct ops *o, float **a) {
    o->rope_backward(a[0], pos, B, T, NH, HS, 10000.0f);
}
static void c_att_f(const struct ops *o, float **a) {
    o->attention_forward(a[0], a[1], a[2], a[3], a[4], len, 1, B, T, NH, HS);
}
static void c_att_b(const struct ops *o, float **a) {
    o->attention_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], B, T, NH, HS);
}
static void c_att_b_dkdv(const struct ops *o, float **a) {
    o->attention_backward(NULL, a[1], a[2], a[3], a[4], a[5], a[6], a[7], B, T, NH, HS);
}
static void c_att_b_dv(const struct ops *o, float **a) {
    o->attention_backward(NULL, NULL, a[2], a[3], a[4], a[5], a[6], a[7], B, T, NH, HS);
}
static void c_att_d(const struct ops *o, float **a) {
    o->attention_decode(a[0], a[1], a[2], a[3], len, B, CAP, NH, KVH, HS);
}
static void c_gelu_f(const struct ops *o, float **a) {
    o->gelu_forward(a[0], a[1], N);
}
static void c_gelu_b(const struct ops *o, float **a) {
    o->gelu_backward(a[0], a[1], a[2], N);
}
static void c_qgelu_f(const struct ops *o, float **a) {
    o->quick_gelu_forward(a[0], a[1], N);
}
static void c_qgelu_b(const struct ops *o, float **a) {
    o->quick_gelu_backward(a[0], a[1], a[2], N);
}
static void c_swiglu_f(const struct ops *o, float **a) {
    o->swiglu_forward(a[0], a[1], a[2], N);
}
static void c_swiglu_b(const struct ops *o, float **a) {
    o->swiglu_backward(a[0], a[1], a[2], a[3], a[4], N);
}
static void c_add(const struct ops *o, float **a) {
    o->add(a[0], a[1], a[2], N);
}
static void c_acc(const struct ops *o, float **a) {
    o->accumulate(a[0], a[1], N);
}
static void c_copy(const struct ops *o, float **a) {
    o->copy(a[0], a[1], N);
}
static void c_zero(const struct ops *o, float **a) {
    o->zero(a[0], N);
}
static void c_adds(const struct ops *o, float **a) {
    o->add_scaled(a[0], a[1], 0.375f, N);
}
static void c_drop(const struct ops *o, float **a) {
    o->dropout(a[0], a[1], N, drop.key, drop.p, drop.scale, 1);
}
static void c_lora_f(const struct ops *o, float **a) {
    o->lora_down_forward(a[0], a[1], a[2], a[3], drop, N, IC, R);
}
static void c_lora_b(const struct ops *o, float **a) {
    o->lora_down_backward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], drop, N, IC, R);
}
static void c_rep_f(const struct ops *o, float **a) {
    o->repeat_kv(a[0], a[1], N, KVH, REP, HS);
}
static void c_rep_b(const struct ops *o, float **a) {
    o->repeat_kv_backward(a[0], a[1], N, KVH, REP, HS);
}
static void c_emb_f(const struct ops *o, float **a) {
    o->embedding_forward(a[0], tok, a[1], N, IC);
}
static void c_emb_b(const struct ops *o, float **a) {
    o->embedding_backward(a[0], a[1], tok, N, IC);
}
static void c_lp_f(const struct ops *o, float **a) {
    o->logprob_forward(a[0], a[1], tgt, msk, N, V);
}
static void c_lp_b(const struct ops *o, float **a) {
    o->logprob_backward(a[0], a[1], a[2], tgt, msk, N, V);
}
static void c_kl_f(const struct ops *o, float **a) {
    o->kl_forward(a[0], a[1], a[2], msk, N, V);
}
static void c_kl_b(const struct ops *o, float **a) {
    o->kl_backward(a[0], a[1], a[2], a[3], msk, N, V);
}
static void c_ss(const struct ops *o, float **a) {
    ss_got = o->sum_squares(a[0], N);
}
static void c_scale(const struct ops *o, float **a) {
    o->scale(a[0], -1.5f, N);
}
static void c_adamw(const struct ops *o, float **a) {
    o->adamw(a[0], a[1], a[2], a[3], N, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 3);
}

#define X (N * IC)
#define Y (N * OC)
#define W (OC * IC)
#define Q (B * T * NH * HS)
#define P (B * NH * T * T)
#define L (N * V)
static const struct opcase cases[] = {
    {"matmul_forward", 4, {Y, X, W, OC}, {0}, {0}, c_mm_f},
    {"matmul_backward", 6, {X, W, OC, Y, X, W}, {0}, {0}, c_mm_b},
    {"matmul_backward (dinp only)", 4, {X, Y, X, W}, {0}, {0}, c_mm_b_dinp},
    {"matmul_scaled_forward", 3, {Y, X, W}, {0}, {0}, c_mms_f},
    {"matmul_scaled_backward", 5, {X, W, Y, X, W}, {0}, {0}, c_mms_b},
    {"layernorm_forward", 6, {X, N, N, X, IC, IC}, {0}, {0}, c_ln_f},
    {"layernorm_backward",
     8,
     {X, IC, IC, X, X, IC, N, N},
     {0, 0, 0, 0, 0, 0, 0, 0.5f},
     {0, 0, 0, 0, 0, 0, 0, 1.5f},
     c_ln_b},
    {"rmsnorm_forward", 4, {X, N, X, IC}, {0}, {0}, c_rms_f},
    {"rmsnorm_backward", 6, {X, IC, X, X, IC, N}, {0, 0, 0, 0, 0, 0.5f}, {0, 0, 0, 0, 0, 1.5f}, c_rms_b},
    {"rope_forward", 1, {Q}, {0}, {0}, c_rope_f},
    {"rope_backward", 1, {Q}, {0}, {0}, c_rope_b},
    {"attention_forward", 5, {Q, P, Q, Q, Q}, {0}, {0}, c_att_f},
    {"attention_backward", 8, {Q, Q, Q, Q, P, Q, Q, Q}, {0, 0, 0, 0, 0.01f}, {0, 0, 0, 0, 0.3f}, c_att_b},
    {"attention_backward (dq NULL)",
     8,
     {Q, Q, Q, Q, P, Q, Q, Q},
     {0, 0, 0, 0, 0.01f},
     {0, 0, 0, 0, 0.3f},
     c_att_b_dkdv},
    {"attention_backward (dv only)",
     8,
     {Q, Q, Q, Q, P, Q, Q, Q},
     {0, 0, 0, 0, 0.01f},
     {0, 0, 0, 0, 0.3f},
     c_att_b_dv},
    {"attention_decode", 4, {B * NH * HS, B *NH *HS, B *CAP *KVH *HS, B *CAP *KVH *HS}, {0}, {0}, c_att_d},
    {"gelu_forward", 2, {N, N}, {0}, {0}, c_gelu_f},
    {"gelu_backward", 3, {N, N, N}, {0}, {0}, c_gelu_b},
    {"quick_gelu_forward", 2, {N, N}, {0}, {0}, c_qgelu_f},
    {"quick_gelu_backward", 3, {N, N, N}, {0}, {0}, c_qgelu_b},
    {"swiglu_forward", 3, {N, N, N}, {0}, {0}, c_swiglu_f},
    {"swiglu_backward", 5, {N, N, N, N, N}, {0}, {0}, c_swiglu_b},
    {"add", 3, {N, N, N}, {0}, {0}, c_add},
    {"accumulate", 2, {N, N}, {0}, {0}, c_acc},
    {"copy", 2, {N, N}, {0}, {0}, c_copy},
    {"zero", 1, {N}, {0}, {0}, c_zero},
    {"add_scaled", 2, {N, N}, {0}, {0}, c_adds},
    {"dropout", 2, {N, N}, {0}, {0}, c_drop},
    {"lora_down_forward", 4, {N * R, X, X, R *IC}, {0}, {0}, c_lora_f},
    {"lora_down_backward", 7, {X, R *IC, X, X, N *R, X, R *IC}, {0}, {0}, c_lora_b},
    {"repeat_kv", 2, {N * KVH * REP * HS, N *KVH *HS}, {0}, {0}, c_rep_f},
    {"repeat_kv_backward", 2, {N * KVH * HS, N *KVH *REP *HS}, {0}, {0}, c_rep_b},
    {"embedding_forward", 2, {X, 4 * IC}, {0}, {0}, c_emb_f},
    {"embedding_backward", 2, {4 * IC, X}, {0}, {0}, c_emb_b},
    {"logprob_forward", 2, {N, L}, {0}, {0}, c_lp_f},
    {"logprob_backward", 3, {L, N, L}, {0}, {0}, c_lp_b},
    {"kl_forward", 3, {N, L, L}, {0}, {0}, c_kl_f},
    {"kl_backward", 4, {L, N, L, L}, {0}, {0}, c_kl_b},
    {"sum_squares", 1, {N}, {0}, {0}, c_ss},
    {"scale", 1, {N}, {0}, {0}, c_scale},
    {"adamw", 4, {N, N, N, N}, {0, 0, 0, 0}, {0, 0, 0, 0.01f}, c_adamw},
};

/* Argument i's starting values: bf16 values in its range, a pure function of (case, i). */
static void fill(float *x, const struct opcase *c, int i, uint64_t seed) {
    float lo = c->lo[i], hi = c->hi[i];
    if (lo == 0 && hi == 0) {
        lo = -1;
        hi = 1;
    }
    uint64_t key = rng_key(seed, (uint64_t)i);
    for (size_t e = 0; e < c->n[i]; e++)
        x[e] = kernel_bf16_round(lo + (hi - lo) * rng_uniform(key, e));
}

/* One case with the arguments whose bit in `mask` is set in bf16 storage: 1 when every argument ends with the
 * same bits as the reference's. */
static int run_case(const struct opcase *c, const struct ops *inner, const struct ops *act, unsigned mask,
                    uint64_t seed) {
    float *ref[MAXARG], *arg[MAXARG];
    for (int i = 0; i < c->nargs; i++) {
        ref[i] = mem_alloc(c->n[i], sizeof(float));
        fill(ref[i], c, i, seed);
        arg[i] = mask >> i & 1 ? mem_alloc_bf16(c->n[i]) : mem_alloc(c->n[i], sizeof(float));
        uint16_t *s = mem_bf16_at(arg[i], NULL);
        if (s)
            inner->bf16_round(s, ref[i], c->n[i]); /* exact: the values are bf16 already */
        else
            memcpy(arg[i], ref[i], c->n[i] * sizeof(float));
    }
    c->call(inner, ref);
    double ss_ref = ss_got;
    c->call(act, arg);
    act->sync();
    int same = ss_got == ss_ref;
    for (int i = 0; i < c->nargs; i++) {
        float *back = mem_alloc(c->n[i], sizeof(float));
        uint16_t *s = mem_bf16_at(arg[i], NULL);
        if (s)
            inner->bf16_widen(back, s, c->n[i]);
        else
            memcpy(back, arg[i], c->n[i] * sizeof(float));
        for (size_t e = 0; e < c->n[i]; e++) {
            float want = s ? kernel_bf16_round(ref[i][e]) : ref[i][e];
            same &= memcmp(&want, &back[e], sizeof want) == 0;
        }
        mem_free(back);
        mem_free(arg[i]);
        mem_free(ref[i]);
    }
    return same;
}

static void ints(void) {
    tok = mem_alloc(N, sizeof *tok);
    pos = mem_alloc(B * T, sizeof *pos);
    len = mem_alloc(B, sizeof *len);
    tgt = mem_alloc(N, sizeof *tgt);
    msk = mem_alloc(N, 1);
    for (int i = 0; i < N; i++) {
        tok[i] = (i * 7) % 4; /* rows of a 4-row table, some twice */
        tgt[i] = (i * 5) % V;
        msk[i] = i % 3 != 1;
    }
    for (int i = 0; i < B * T; i++)
        pos[i] = i % T + 2;
    len[0] = T;
    len[1] = 3;
}

/* The tables' flag, which wrappers carry over. */
static void test_flag(void) {
    const struct ops *act = ops_precision(ops_cpu(1), "bf16-act");
    CHECK(act->bf16_storage == 1 && ops_takes_bf16(act));
    CHECK(!ops_takes_bf16(ops_precision(ops_cpu(1), "bf16")) && !ops_takes_bf16(NULL));
}

static void test_ops(void) {
    const struct ops *inner = ops_precision(ops_cpu(2), "bf16"), *act = ops_precision(ops_cpu(2), "bf16-act");
    CHECK(inner && act && act16_inner(act) == inner && strcmp(act->name, "cpu-bf16-act") == 0);
    CHECK(ops_takes_bf16(act) && !ops_takes_bf16(inner) && !ops_takes_bf16(ops_cpu(2)));
    CHECK(ops_precision(ops_cpu(2), "bf16-act") == act); /* one table per inner table */
    ints();
    int fails = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct opcase *c = &cases[k];
        unsigned all = (1u << c->nargs) - 1, odd = 0x55u & all, even = 0xaau & all;
        unsigned masks[] = {all, odd, even, 0};
        for (int m = 0; m < 4; m++)
            if (!run_case(c, inner, act, masks[m], 1000 + k)) {
                fprintf(stderr, "  %s: bf16 arguments 0x%x differ from the definition\n", c->name, masks[m]);
                fails++;
            }
    }
    CHECK(fails == 0);
    printf("operations on bf16 storage: %zu cases x 4 storage mixes, %d differ\n",
           sizeof cases / sizeof cases[0], fails);
    mem_free(tok);
    mem_free(pos);
    mem_free(len);
    mem_free(tgt);
    mem_free(msk);
}

/* The definition is not the identity: an activation written through bf16 storage loses bits. */
static void test_rounds(void) {
    const struct ops *act = ops_precision(ops_cpu(1), "bf16-act");
    float *x = mem_alloc(4, sizeof(float)), *y = mem_alloc_bf16(4), *z = mem_alloc(4, sizeof(float));
    x[0] = 1.0f + 0x1p-9f; /* below bf16's half step: rounds to 1 */
    x[1] = 3.0f;
    x[2] = -1.0f - 0x3p-8f; /* a tie, to even: -1 - 2^-6 */
    x[3] = 1e-30f;
    act->copy(y, x, 4);
    act->copy(z, y, 4);
    CHECK(z[0] == 1.0f && z[1] == 3.0f && z[2] == -1.0f - 0x1p-6f && z[3] == kernel_bf16_round(1e-30f));
    mem_free(x);
    mem_free(y);
    mem_free(z);
}

/* ---- the tiny LLaVA ---- */

#define NB 2
#define NT 24
#define TARGETS ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

static int fwd_bwd(struct llava *m, const struct ops *o, const struct llava_batch *fx, float *loss) {
    if (llava_forward(m, o, fx->ids, fx->mask, NB, NT, fx->pixels, NB) < 0 ||
        train_ce_loss(m, o, fx->labels, NB, NT, loss) < 0)
        return -1;
    llava_zero_grad(m, o);
    return llava_backward(m, o);
}

static int tiny(struct llava *m, struct lora *l, struct llava_batch *fx) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    memset(m, 0, sizeof *m);
    memset(l, 0, sizeof *l);
    int ok = llava_batch_load(fx, dir, data, "llava_grad/labels.safetensors", NB * NT) == 0;
    ok = ok && llava_load(m, dir, NB, NT) == 0;
    if (ok)
        llava_set_trainable(m, "", 0);
    ok = ok && lora_create(l, 4, 8.0, 0.1) == 0;
    if (ok) {
        lora_set_target_regex(l, TARGETS);
        ok = llava_lora_add_targets(m, l) == 0;
    }
    if (ok) {
        lora_init(l, 17);
        for (size_t i = 0; i < l->n; i++) {
            uint64_t key = rng_key(19, i);
            for (size_t e = 0; e < l->m[i].out * (size_t)l->r; e++)
                l->m[i].B[e] = 0.05f * (2.0f * rng_uniform(key, e) - 1.0f);
        }
        ok = llava_lora_attach(m, l, 23) == 0;
    }
    if (!ok)
        fprintf(stderr, "  tiny model: %s\n", err_msg());
    return ok;
}

static double max_rel(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - want[i]));
        den = fmax(den, fabs((double)want[i]));
    }
    return den > 0 ? num / den : num;
}

/* bf16 products with fp32 activations against the same with bf16 activations. Every activation between two
 * operations is rounded to bf16 too (2^-9 relative at most, each), through a dozen layers forward and back:
 * measured as max |act - products| / max |products| over the tensor, the logits moved 1.5e-2, the adapter's
 * gradients 8.7e-3, the loss 4.0e-4 relative. The bounds (5e-2, 5e-2, 1e-2) leave a few times that and still
 * fail a gradient that is wrong rather than rounded (a lost write-back measures 1.0); none may be 0 (the
 * storage is bf16). */
static void test_model(void) {
    struct llava m;
    struct lora l;
    struct llava_batch fx;
    int ok = tiny(&m, &l, &fx);
    CHECK(ok);
    if (!ok)
        return;
    const struct ops *b16 = ops_precision(ops_cpu(1), "bf16"), *act1 = ops_precision(ops_cpu(1), "bf16-act");
    llava_grads_init(&m);
    llava_lora_mode(&m, 1, 3);
    size_t ng = m.ngrads, nl = NB * NT * (size_t)m.cfg.text.vocab;
    float lp = 0, la = 0, lb = 0;
    float *gp = malloc(ng * sizeof(float)), *ga = malloc(ng * sizeof(float)),
          *lgp = malloc(nl * sizeof(float));
    ok = fwd_bwd(&m, b16, &fx, &lp) == 0;
    memcpy(gp, m.grads, ng * sizeof(float));
    memcpy(lgp, m.a.logits, nl * sizeof(float));
    size_t f32_only = m.nacts;
    CHECK(m.acts16 == NULL && m.nacts16 == 0);

    llava_set_act_bf16(&m, 1);
    CHECK(m.dacts16 != NULL && m.ndacts16 > 0);
    CHECK(llava_forward(&m, b16, fx.ids, fx.mask, NB, NT, fx.pixels, NB) < 0);
    CHECK(err_msg() && strstr(err_msg(), "does not take bf16 storage") != NULL);
    ok = ok && fwd_bwd(&m, act1, &fx, &la) == 0;
    CHECK(ok);
    CHECK(m.acts16 != NULL && m.nacts + m.nacts16 == f32_only && m.nacts < f32_only / 4);
    memcpy(ga, m.grads, ng * sizeof(float));
    double el = max_rel(m.a.logits, lgp, nl), rl = fabs((double)la - lp) / fabs((double)lp);
    double worst = max_rel(ga, gp, ng);
    ok = ok && fwd_bwd(&m, ops_precision(ops_cpu(2), "bf16-act"), &fx, &lb) == 0;
    CHECK(ok && memcmp(&la, &lb, sizeof la) == 0 && memcmp(ga, m.grads, ng * sizeof(float)) == 0);
    printf("tiny LoRA, bf16 activations against bf16 products: loss %.7f vs %.7f (rel %.2e), logits max_rel "
           "%.2e, adapter gradients max_rel %.2e; activations %zu fp32 + %zu bf16 values (all fp32: %zu)\n",
           la, lp, rl, el, worst, m.nacts, m.nacts16, f32_only);
    CHECK(rl > 0 && rl <= 1e-2);
    CHECK(el > 0 && el <= 5e-2);
    CHECK(worst > 0 && worst <= 5e-2);

    llava_set_act_bf16(&m, 0); /* back: the bf16-products run's bits again */
    ok = fwd_bwd(&m, b16, &fx, &lb) == 0;
    CHECK(ok && memcmp(&lp, &lb, sizeof lp) == 0 && memcmp(gp, m.grads, ng * sizeof(float)) == 0);
    free(gp);
    free(ga);
    free(lgp);
    llava_batch_free(&fx);
    llava_free(&m);
    lora_free(&l);
    ops_cpu(2);
}

/* ---- how far another summation order moves a bf16-act run (the CUDA parity test's tolerance) ---- */

/* A GPU sums products and reductions in another order than the CPU: their outputs differ by an ulp or so, and
 * where such a value lies that close to a bf16 rounding boundary, the two backends store neighbouring bf16
 * values. Emulated here: the CPU's bf16 table with every reducing operation's outputs moved by one fp32 ulp,
 * up or down at random (a pure function of `noise_seed` and a counter), under the act16 wrapper. */
static const struct ops *clean;
static struct ops noisy;
static uint64_t noise_seed, noise_calls;

static void nudge(float *x, size_t n) {
    if (!x)
        return;
    uint64_t key = rng_key(noise_seed, noise_calls++);
    for (size_t i = 0; i < n; i++) {
        float u = rng_uniform(key, i);
        x[i] = nextafterf(x[i], u < 0.5f ? -INFINITY : INFINITY);
    }
}
static void n_mm_f(float *o, const float *x, const float *w, const float *b, size_t n, size_t i, size_t k) {
    clean->matmul_forward(o, x, w, b, n, i, k);
    nudge(o, n * k);
}
static void n_mm_b(float *di, float *dw, float *db, const float *g, const float *x, const float *w, size_t n,
                   size_t i, size_t k) {
    clean->matmul_backward(di, dw, db, g, x, w, n, i, k);
    nudge(di, n * i);
    nudge(dw, k * i);
}
static void n_mms_f(float *o, const float *x, const float *w, float s, size_t n, size_t i, size_t k) {
    clean->matmul_scaled_forward(o, x, w, s, n, i, k);
    nudge(o, n * k);
}
static void n_mms_b(float *di, float *dw, const float *g, const float *x, const float *w, float s, size_t n,
                    size_t i, size_t k) {
    clean->matmul_scaled_backward(di, dw, g, x, w, s, n, i, k);
    nudge(di, n * i);
    nudge(dw, k * i);
}
static void n_rms_f(float *o, float *rs, const float *x, const float *w, size_t n, size_t c, float e) {
    clean->rmsnorm_forward(o, rs, x, w, n, c, e);
    nudge(o, n * c);
}
static void n_rms_b(float *di, float *dw, const float *g, const float *x, const float *w, const float *rs,
                    size_t n, size_t c) {
    clean->rmsnorm_backward(di, dw, g, x, w, rs, n, c);
    nudge(di, n * c);
}
static void n_ln_f(float *o, float *mu, float *rs, const float *x, const float *w, const float *b, size_t n,
                   size_t c, float e) {
    clean->layernorm_forward(o, mu, rs, x, w, b, n, c, e);
    nudge(o, n * c);
}
static void n_att_f(float *o, float *p, const float *q, const float *k, const float *v, const int32_t *l,
                    int cz, size_t b, size_t t, size_t h, size_t s) {
    clean->attention_forward(o, p, q, k, v, l, cz, b, t, h, s);
    nudge(o, b * t * h * s);
}
static void n_att_b(float *dq, float *dk, float *dv, const float *g, const float *p, const float *q,
                    const float *k, const float *v, size_t b, size_t t, size_t h, size_t s) {
    clean->attention_backward(dq, dk, dv, g, p, q, k, v, b, t, h, s);
    nudge(dq, b * t * h * s);
    nudge(dk, b * t * h * s);
    nudge(dv, b * t * h * s);
}

/* The largest moves over 8 noise seeds, for the CUDA parity test's BF16_ACT_MODEL_TOL (5e-2) and
 * BF16_ACT_LOSS_TOL (1e-3), which hold a GPU's bf16-act run to the CPU's. Measured: logits 1.0e-2, adapter
 * gradients 5.6e-3, the loss 1.2e-4: bf16's own noise level, since each move is rounded again downstream.
 * Checked: at most half those tolerances, so they keep at least twice the emulated noise; and above 0 (the
 * emulation must move something). */
static void test_flips(void) {
    struct llava m;
    struct lora l;
    struct llava_batch fx;
    int ok = tiny(&m, &l, &fx);
    CHECK(ok);
    if (!ok)
        return;
    clean = ops_precision(ops_cpu(1), "bf16");
    noisy = *clean;
    noisy.name = "cpu-bf16-noisy";
    noisy.matmul_forward = n_mm_f;
    noisy.matmul_backward = n_mm_b;
    noisy.matmul_scaled_forward = n_mms_f;
    noisy.matmul_scaled_backward = n_mms_b;
    noisy.rmsnorm_forward = n_rms_f;
    noisy.rmsnorm_backward = n_rms_b;
    noisy.layernorm_forward = n_ln_f;
    noisy.attention_forward = n_att_f;
    noisy.attention_backward = n_att_b;
    const struct ops *act = ops_precision(ops_cpu(1), "bf16-act"), *nact = act16_wrap(&noisy, NULL);
    llava_set_act_bf16(&m, 1);
    llava_grads_init(&m);
    llava_lora_mode(&m, 1, 3);
    size_t ng = m.ngrads, nl = NB * NT * (size_t)m.cfg.text.vocab;
    float l0 = 0, l1 = 0, *g0 = malloc(ng * sizeof(float)), *lg0 = malloc(nl * sizeof(float));
    ok = fwd_bwd(&m, act, &fx, &l0) == 0;
    memcpy(g0, m.grads, ng * sizeof(float));
    memcpy(lg0, m.a.logits, nl * sizeof(float));
    double el = 0, eg = 0, eloss = 0;
    for (noise_seed = 1; ok && noise_seed <= 8; noise_seed++) {
        noise_calls = 0;
        ok = fwd_bwd(&m, nact, &fx, &l1) == 0;
        el = fmax(el, max_rel(m.a.logits, lg0, nl));
        eg = fmax(eg, max_rel(m.grads, g0, ng));
        eloss = fmax(eloss, fabs((double)l1 - l0) / fabs((double)l0));
    }
    CHECK(ok);
    printf("one-ulp noise in every reduction, bf16 activations, 8 seeds: logits moved up to %.2e, adapter "
           "gradients %.2e, the loss %.2e\n",
           el, eg, eloss);
    CHECK(el > 0 && el <= 2.5e-2 && eg > 0 && eg <= 2.5e-2 && eloss > 0 && eloss <= 5e-4);
    free(g0);
    free(lg0);
    llava_batch_free(&fx);
    llava_free(&m);
    lora_free(&l);
}

/* The plan's activation and backward-scratch blocks are the bytes the model allocates for them. */
static void test_plan(void) {
    const char *data = getenv("PULSE_TEST_DATA") ? getenv("PULSE_TEST_DATA") : "tests/data";
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llava_tiny", data);
    for (int recompute = 0; recompute < 2; recompute++) {
        struct llava m;
        memset(&m, 0, sizeof m);
        struct llava_batch fx;
        int ok = llava_batch_load(&fx, dir, data, "llava_grad/labels.safetensors", NB * NT) == 0;
        ok = ok && llava_load(&m, dir, NB, NT) == 0;
        CHECK(ok);
        if (!ok)
            return;
        struct llava_plan p;
        struct llava_plan_opts o = {.B = NB,
                                    .T = NT,
                                    .train = 1,
                                    .trainable = "",
                                    .recompute = recompute,
                                    .precision = "bf16-act",
                                    .device = "cpu"};
        CHECK(llava_memory_plan(&m.cfg, &o, &p) == 0);
        llava_set_recompute(&m, recompute);
        llava_set_act_bf16(&m, 1);
        llava_set_trainable(&m, "", 1);
        llava_grads_init(&m);
        float loss;
        CHECK(fwd_bwd(&m, ops_precision(ops_cpu(1), "bf16-act"), &fx, &loss) == 0);
        size_t acts = m.nacts * sizeof(float) + m.nacts16 * 2 + llava_token_bytes(&m);
        size_t scratch = m.ndacts * sizeof(float) + m.ndacts16 * 2;
        int seen = 0;
        for (size_t i = 0; i < p.n; i++) {
            if (strncmp(p.b[i].name, "activations (bf16", 17) == 0)
                seen += p.b[i].bytes == acts;
            if (strcmp(p.b[i].name, "backward scratch (bf16 but logits)") == 0)
                seen += p.b[i].bytes == scratch;
        }
        CHECK(seen == 2);
        llava_batch_free(&fx);
        llava_free(&m);
    }
}

int main(void) {
    test_storage();
    test_flag();
    test_ops();
    test_rounds();
    test_model();
    test_flips();
    test_plan();
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures != 0;
}
