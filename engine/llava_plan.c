/* llava_plan: a job's memory block by block (engine/llava_plan.h), summed from a model shell's size tables.
 */
#include "engine/llava_plan.h"
#include "engine/llava.h"
#include "engine/lora.h"
#include "engine/mem.h"
#include "engine/train.h"
#include "engine/unlearn_loss.h"
#include "util/err.h"

#include <string.h>

#ifdef PULSE_HAVE_CUDA
int cuda_device_query(char *name, size_t cap, double *gib); /* engine/cuda/device.cu */
#endif

static void block(struct llava_plan *p, const char *name, size_t bytes) {
    if (p->n < LLAVA_PLAN_MAX)
        p->b[p->n++] = (struct llava_plan_block){name, bytes};
}

/* The bytes of a block of n floats as mem_alloc is asked for it (an empty block still takes one float). */
static size_t floats(size_t n) {
    return (n ? n : 1) * sizeof(float);
}

/* The bytes of the blocks llava_carve makes for a table: its fp32 rows in one (at least one float), its bf16
 * rows in another (mem_alloc_bf16: 2 bytes a value), when there are any. */
static size_t table_bytes(const struct llava_tensor *t, size_t n) {
    size_t sum[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        sum[t[i].bf16 != 0] += t[i].n;
    return floats(sum[0]) + sum[1] * sizeof(uint16_t);
}

static int bf16_products(const struct llava_plan_opts *o) {
    return o->precision && (strcmp(o->precision, "bf16") == 0 || strcmp(o->precision, "bf16-act") == 0);
}

/* A model's tables without its blocks, in o's activation layout. */
static int shell(struct llava *s, const struct llava_config *cfg, const struct llava_plan_opts *o) {
    if (llava_tables(s, cfg, o->B, o->T) < 0) {
        llava_free(s);
        return -1;
    }
    s->recompute = o->recompute != 0;
    s->act_bf16 = o->precision && strcmp(o->precision, "bf16-act") == 0;
    llava_act_rows(s);
    return 0;
}

/* The blocks every model holds: parameters, then activations with the token arrays. */
static size_t model_bytes(const struct llava *s, size_t *weights) {
    *weights = table_bytes(s->ptab, s->nptab);
    return table_bytes(s->atab, s->natab) + llava_token_bytes(s);
}

/* In bf16 the product weights that do not train get a copy each (ops weights_frozen). On CUDA the copies are
 * bf16 and the fp32 pages move to the host, all but the partial pages each weight shares with its neighbours:
 * at most one at either end, counted in full. On the CPU the copies are rounded fp32 arrays beside the
 * weights. *frozen: those weights' floats, *edges: the edge pages' bytes (CUDA). */
static void frozen_products(const struct llava *s, const struct llava_plan_opts *o, size_t *frozen,
                            size_t *edges) {
    *frozen = *edges = 0;
    for (size_t i = 0; bf16_products(o) && i < s->nptab; i++) {
        const struct llava_tensor *t = &s->ptab[i];
        size_t bytes = t->n * sizeof(float);
        if (t->product && !t->trainable) {
            *frozen += t->n;
            *edges += bytes < 2 * MEM_CUDA_PAGE ? bytes : 2 * MEM_CUDA_PAGE;
        }
    }
}

static int on_cuda(const struct llava_plan_opts *o) {
    return o->device && strcmp(o->device, "cuda") == 0;
}

/* The bytes a model's weights take with their copies, from the fp32 block's. */
static size_t weights_with_copies(const struct llava *s, const struct llava_plan_opts *o, size_t weights) {
    size_t frozen, edges;
    frozen_products(s, o, &frozen, &edges);
    return on_cuda(o) ? weights - frozen * sizeof(float) + frozen * 2 + edges
                      : weights + frozen * sizeof(float);
}

/* The weights' blocks, from the fp32 block's bytes. */
static void weights_blocks(const struct llava *s, const struct llava_plan_opts *o, size_t weights,
                           struct llava_plan *p) {
    size_t frozen, edges;
    frozen_products(s, o, &frozen, &edges);
    if (!frozen) {
        block(p, "weights (fp32)", weights);
    } else if (!on_cuda(o)) {
        block(p, "weights (fp32)", weights);
        block(p, "frozen products (rounded copies, fp32)", frozen * sizeof(float));
    } else {
        block(p, "weights (fp32, but frozen products)", weights - frozen * sizeof(float));
        block(p, "frozen products (bf16 copies)", frozen * 2);
        block(p, "their fp32 edge pages (at most)", edges);
    }
}

/* Gradients, backward scratch, AdamW and the loss's buffers for the flags o sets; ab: the adapter's floats.
 * Returns the loss's bytes (allocated and freed within a step). */
static size_t training_blocks(struct llava *s, const struct llava_plan_opts *o, size_t ab,
                              struct llava_plan *p) {
    llava_grads_layout(s);
    s->ngrads += ab; /* an attached adapter's A and B follow the table's rows (llava_lora_grads_layout) */
    block(p, "gradients", floats(s->ngrads));
    block(p, s->act_bf16 ? "backward scratch (bf16 but logits)" : "backward scratch",
          table_bytes(s->dtab, s->ndtab));
    block(p, "AdamW moments", train_adamw_floats(s) * sizeof(float));
    size_t loss = train_loss_bytes(o->B * o->T);
    block(p, "loss buffers (during a step)", loss);
    return loss;
}

/* The shared reference (struct unlearn_ref) for the shell's capacity and trainable flags: its logits, and
 * the start copies of what trains in full when something does. */
static void shared_reference(const struct llava *s, struct llava_plan *p) {
    size_t logits, start;
    unlearn_ref_floats(s, &logits, &start);
    block(p, "reference logits (KL / NPO)", logits * sizeof(float));
    if (start)
        block(p, "reference start values (trained tensors)", start * sizeof(float));
}

/* Generation's K/V cache (engine/generate.c's kv_make): every layer's K and V for B sequences of T +
 * gen_tokens positions, and their lengths; made for each batch it generates and freed after. */
static size_t kv_cache(const struct llava_config *cfg, const struct llava_plan_opts *o,
                       struct llava_plan *p) {
    const struct text_config *t = &cfg->text;
    size_t d = (size_t)t->kv_heads * ((size_t)t->hidden / (size_t)t->heads);
    size_t bytes = 2 * (size_t)t->layers * floats(o->B * (o->T + o->gen_tokens) * d);
    bytes += o->B * sizeof(int32_t);
    block(p, "K/V cache (generation, per batch)", bytes);
    return bytes;
}

static int check_opts(const struct llava_plan_opts *o) {
    if (o->precision && strcmp(o->precision, "fp32") != 0 && !bf16_products(o))
        return err_set("memory plan: unknown precision '%s' (fp32, bf16 or bf16-act)", o->precision);
    if (o->device && strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0)
        return err_set("memory plan: unknown device '%s' (cpu or cuda)", o->device);
    if (o->reference < LLAVA_PLAN_REF_NONE || o->reference > LLAVA_PLAN_REF_SHARED)
        return err_set("memory plan: unknown reference kind %d", o->reference);
    return 0;
}

int llava_memory_plan(const struct llava_config *cfg, const struct llava_plan_opts *o, struct llava_plan *p) {
    memset(p, 0, sizeof *p);
    struct llava s;
    if (check_opts(o) < 0 || shell(&s, cfg, o) < 0)
        return -1;
    size_t ab = 0, lacts = 0, weights, transient = 0;
    if (o->lora && llava_lora_plan(&s, o->lora, &ab, &lacts) < 0) {
        llava_free(&s);
        return -1;
    }
    size_t acts = model_bytes(&s, &weights);
    if (o->train && o->trainable)
        llava_set_trainable(&s, o->trainable, 1);
    weights_blocks(&s, o, weights, p);
    block(p,
          s.act_bf16
              ? (o->recompute ? "activations (bf16, recomputed per layer)"
                              : "activations (bf16, kept for every layer)")
              : (o->recompute ? "activations (recomputed per layer)" : "activations (kept for every layer)"),
          acts);
    if (o->lora) {
        block(p, "LoRA adapter (A, B)", ab * sizeof(float));
        block(p, "LoRA activations", lacts * sizeof(float));
    }
    if (o->train)
        transient = training_blocks(&s, o, ab, p);
    if (o->gen_tokens)
        transient += kv_cache(cfg, o, p);
    if (o->reference == LLAVA_PLAN_REF_SHARED)
        shared_reference(&s, p);
    llava_free(&s);
    if (o->reference == LLAVA_PLAN_REF_MODEL) {
        struct llava r;
        struct llava_plan_opts ro = *o;
        ro.recompute = 1; /* it only runs forwards: stages/unlearn.c shares one layer's intermediates */
        if (shell(&r, cfg, &ro) < 0)
            return -1;
        size_t racts = model_bytes(&r, &weights); /* a reference trains nothing: every product is frozen */
        block(p, "reference model (KL / NPO)", weights_with_copies(&r, o, weights) + racts);
        llava_free(&r);
    }
    for (size_t i = 0; i < p->n; i++)
        p->total += p->b[i].bytes;
    p->resident = p->total - transient;
    p->reserve = o->device && strcmp(o->device, "cuda") == 0 ? MEM_CUDA_RESERVE : 0;
    return 0;
}

static const char *size_text(char *out, size_t cap, size_t bytes) {
    double kib = (double)bytes / 1024.0;
    if (kib < 1024.0)
        snprintf(out, cap, "%.1f KiB", kib);
    else if (kib < 1048576.0)
        snprintf(out, cap, "%.1f MiB", kib / 1024.0);
    else
        snprintf(out, cap, "%.2f GiB", kib / 1048576.0);
    return out;
}

void llava_plan_print(FILE *f, const struct llava_plan *p, const char *indent, size_t device_bytes) {
    char a[32], b[32];
    for (size_t i = 0; i < p->n; i++)
        fprintf(f, "%s%-40s %12s\n", indent, p->b[i].name, size_text(a, sizeof a, p->b[i].bytes));
    fprintf(f, "%s%-40s %12s\n", indent, "total", size_text(a, sizeof a, p->total));
    if (p->reserve)
        fprintf(f, "%s%-40s %12s\n", indent, "CUDA reserve (context, cuBLAS, scratch)",
                size_text(a, sizeof a, p->reserve));
    if (!device_bytes)
        return;
    size_t need = p->total + p->reserve;
    if (need <= device_bytes)
        fprintf(f, "%sfits the device's %s: %s to spare\n", indent, size_text(a, sizeof a, device_bytes),
                size_text(b, sizeof b, device_bytes - need));
    else
        fprintf(f, "%sdoes NOT fit the device's %s: %s short\n", indent, size_text(a, sizeof a, device_bytes),
                size_text(b, sizeof b, need - device_bytes));
}

size_t llava_plan_device_bytes(const char *device) {
#ifdef PULSE_HAVE_CUDA
    char name[256];
    double gib;
    if (device && strcmp(device, "cuda") == 0 && cuda_device_query(name, sizeof name, &gib) == 0)
        return (size_t)(gib * 1073741824.0 + 0.5);
#else
    (void)device;
#endif
    return 0;
}
