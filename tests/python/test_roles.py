"""Parameter roles from the model's modules (issue 20): opal.torch.Optimizer(model, spec="muon")
sends embeddings, heads, norms and biases to AdamW and the hidden matrices to Newton-Schulz,
whatever the model family calls them (GPT-2, Llama in both its Hugging Face and Meta spellings,
nanoGPT), and a CNN's conv weights are matrices."""
import unittest
import warnings

import torch
import torch.nn as nn

import opal.torch

TO_ADAMW = "embedding,head,other>"


class RMSNorm(nn.Module):  # as Llama's code writes it (no torch class: found by its name)
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class LayerNorm(nn.Module):  # nanoGPT's, with an optional bias
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Block(nn.Module):
    """A pre-norm transformer block with family-specific attribute names."""

    def __init__(self, d, names, norm, bias):
        super().__init__()
        self.names = names
        setattr(self, names["norm1"], norm(d))
        setattr(self, names["qkv"], nn.Linear(d, 3 * d, bias=bias))
        setattr(self, names["proj"], nn.Linear(d, d, bias=bias))
        setattr(self, names["norm2"], norm(d))
        setattr(self, names["up"], nn.Linear(d, 4 * d, bias=bias))
        setattr(self, names["down"], nn.Linear(4 * d, d, bias=bias))

    def forward(self, x):
        n = self.names
        h = getattr(self, n["norm1"])(x)
        q, k, v = getattr(self, n["qkv"])(h).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        x = x + getattr(self, n["proj"])(att @ v)
        return x + getattr(self, n["down"])(torch.relu(getattr(self, n["up"])(getattr(self, n["norm2"])(x))))


class LM(nn.Module):
    """A tiny language model in one family's spelling: `outer` holds the embeddings, the blocks
    and the final norm; `head` is the output projection, tied to the token embedding or not."""

    def __init__(self, family, vocab=40, d=16, ctx=8):
        super().__init__()
        spec = FAMILIES[family]
        self.family = family
        outer = nn.Module()
        setattr(outer, spec["tok"], nn.Embedding(vocab, d))
        if spec["pos"]:
            setattr(outer, spec["pos"], nn.Embedding(ctx, d))
        setattr(outer, spec["blocks"], nn.ModuleList([Block(d, spec["block"], spec["norm"], spec["bias"]) for _ in range(2)]))
        setattr(outer, spec["final_norm"], spec["norm"](d))
        if spec["outer"]:
            setattr(self, spec["outer"], outer)
        else:
            for name, m in outer.named_children():
                setattr(self, name, m)
        setattr(self, spec["head"], nn.Linear(d, vocab, bias=False))
        if spec["tied"]:
            getattr(self, spec["head"]).weight = self._part("tok").weight

    def _part(self, key):
        spec = FAMILIES[self.family]
        outer = getattr(self, spec["outer"]) if spec["outer"] else self
        return getattr(outer, spec[key])

    def forward(self, idx):
        x = self._part("tok")(idx)
        if FAMILIES[self.family]["pos"]:
            x = x + self._part("pos")(torch.arange(idx.shape[1]))
        for b in self._part("blocks"):
            x = b(x)
        return getattr(self, FAMILIES[self.family]["head"])(self._part("final_norm")(x))


GPT2_BLOCK = {"norm1": "ln_1", "qkv": "c_attn", "proj": "c_proj", "norm2": "ln_2", "up": "c_fc", "down": "c_mlp_proj"}
LLAMA_BLOCK = {"norm1": "input_layernorm", "qkv": "qkv_proj", "proj": "o_proj", "norm2": "post_attention_layernorm", "up": "up_proj",
               "down": "down_proj"}
META_BLOCK = {"norm1": "attention_norm", "qkv": "wqkv", "proj": "wo", "norm2": "ffn_norm", "up": "w1", "down": "w2"}
FAMILIES = {
    # Hugging Face GPT-2: transformer.wte / wpe / h / ln_f, lm_head tied to wte, nn.LayerNorm, biases
    "gpt2": dict(outer="transformer", tok="wte", pos="wpe", blocks="h", final_norm="ln_f", head="lm_head", tied=True, norm=nn.LayerNorm,
                 bias=True, block=GPT2_BLOCK),
    # Hugging Face Llama: model.embed_tokens / layers / norm, an untied lm_head, RMSNorm, no biases
    "llama_hf": dict(outer="model", tok="embed_tokens", pos=None, blocks="layers", final_norm="norm", head="lm_head", tied=False,
                     norm=RMSNorm, bias=False, block=LLAMA_BLOCK),
    # Meta's Llama: tok_embeddings / layers / norm / output at the top level, untied
    "llama_meta": dict(outer=None, tok="tok_embeddings", pos=None, blocks="layers", final_norm="norm", head="output", tied=False,
                       norm=RMSNorm, bias=False, block=META_BLOCK),
    # nanoGPT: its own LayerNorm class (weight and bias), tied head
    "nanogpt": dict(outer="transformer", tok="wte", pos="wpe", blocks="h", final_norm="ln_f", head="lm_head", tied=True, norm=LayerNorm,
                    bias=True, block=GPT2_BLOCK),
}


def hidden(name):
    return any(k in name for k in ("attn", "proj", "c_fc", "wqkv", "wo.", "w1", "w2")) and name.endswith("weight")


class TestRolesFromModules(unittest.TestCase):
    def test_each_family_routes_like_the_recipe(self):
        for family in FAMILIES:
            with self.subTest(family=family):
                torch.manual_seed(0)
                model = LM(family)
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # a model gives roles: no warning
                    opt = opal.torch.Optimizer(model, spec="muon", lr=0.02)
                names = [n for n, _ in model.named_parameters()]
                self.assertEqual(names, opt.param_groups[0]["param_names"])
                hidden_matrices = [n for n, p in model.named_parameters() if p.dim() == 2 and hidden(n)]
                self.assertEqual(len(hidden_matrices), 8, names)
                for n, p in model.named_parameters():
                    route = opt.route(n)
                    if n in hidden_matrices:
                        self.assertEqual(route, "matrix", n)
                    else:  # embeddings, the head, norms and biases
                        self.assertTrue(route.startswith(TO_ADAMW), f"{n}: {route}")
                tok = model._part("tok").weight
                head = getattr(model, FAMILIES[family]["head"]).weight
                table = opt.routes()
                self.assertIn(" (embedding)\n", table)
                if not FAMILIES[family]["tied"]:
                    self.assertIn(f"{FAMILIES[family]['head']}.weight [40, 16] (head)\n", table)
                # three steps of language modelling: the embedding moves as AdamW's first step does
                # (each element by lr * adam_lr_ratio = 3e-4, less where |g| is near eps), the hidden
                # matrices by Newton-Schulz
                idx = torch.randint(0, 40, (4, 8))
                before = tok.detach().clone()
                block_w = getattr(model._part("blocks")[0], FAMILIES[family]["block"]["proj"]).weight
                block_before = block_w.detach().clone()
                loss = nn.functional.cross_entropy(model(idx[:, :-1]).reshape(-1, 40), idx[:, 1:].reshape(-1))
                loss.backward()
                opt.step()
                moved = (tok.detach() - before).abs()
                g = tok.grad.abs()
                adam_first_step = 3e-4 * g / (g + 1e-8)  # |m_hat / (sqrt(v_hat) + eps)| = |g| / (|g| + eps)
                # (to the rounding of w - lr * u in float32: half an ulp of w, under 1e-6 for |w| < 8)
                self.assertLess((moved - adam_first_step).abs().max().item(), 1e-6, family)
                ns_step = (block_w.detach() - block_before).abs().max().item()
                self.assertGreater(ns_step, 10 * 3e-4)  # lr 0.02 on an orthogonalized update
                opt.zero_grad()
                for _ in range(2):
                    loss = nn.functional.cross_entropy(model(idx[:, :-1]).reshape(-1, 40), idx[:, 1:].reshape(-1))
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                self.assertTrue(torch.isfinite(loss))
                if FAMILIES[family]["tied"]:
                    self.assertIs(tok, head)

    def test_a_hidden_matrix_as_wide_as_the_position_table_is_no_head(self):
        # GPT-2 medium: n_embd = block_size = 1024, so c_proj has as many outputs as wpe has rows;
        # only the largest embedding (the vocabulary) marks a head
        model = LM("gpt2", vocab=40, d=8, ctx=8)
        opt = opal.torch.Optimizer(model, spec="muon")
        self.assertEqual(opt.route("transformer.h.0.c_proj.weight"), "matrix")

    def test_a_cnn_conv_weights_are_matrices_and_a_classifier_head_is_named(self):
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
        opt = opal.torch.Optimizer(model, spec="muon", roles={"4.weight": "head"})
        self.assertEqual(opt.route("0.weight"), "matrix")
        self.assertIn("0.weight [8, 3, 3, 3] (conv)\n  route:    matrix\n  view:     matrix 8 x 27 (dim 0 x rest)", opt.routes())
        for n in ("0.bias", "1.weight", "1.bias", "4.weight", "4.bias"):
            self.assertTrue(opt.route(n).startswith(TO_ADAMW), n)
        x = torch.randn(2, 3, 8, 8)
        model(x).sum().backward()
        opt.step()
        # without the override the classifier is a hidden matrix as far as shapes go
        self.assertEqual(opal.torch.Optimizer(model, spec="muon").route("4.weight"), "matrix")

    def test_model_with_parameter_groups_names_and_roles_the_tensors(self):
        model = LM("llama_meta")
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in model.named_parameters() if p.dim() < 2]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # names come from the model: no unnamed-parameter warning
            opt = opal.torch.Optimizer([{"params": decay}, {"params": rest, "lr": 0.01}], spec="muon", model=model)
        self.assertIn("tok_embeddings.weight", opt.param_groups[0]["param_names"])
        self.assertTrue(opt.route("tok_embeddings.weight").startswith(TO_ADAMW))
        self.assertTrue(opt.route("output.weight").startswith(TO_ADAMW))
        self.assertEqual(opt.route("layers.0.wo.weight"), "matrix")
        self.assertTrue(opt.route("norm.weight").startswith(TO_ADAMW))

    def test_roles_override_and_bad_roles_are_refused(self):
        model = LM("gpt2")
        opt = opal.torch.Optimizer(model, spec="muon", roles={"transformer.h.*.c_fc.weight": "head", "transformer.wpe.weight": None})
        self.assertTrue(opt.route("transformer.h.1.c_fc.weight").startswith(TO_ADAMW))
        self.assertEqual(opt.route("transformer.wpe.weight"), "matrix")  # no role: its shape decides
        with self.assertRaisesRegex(ValueError, "did you mean `embedding`"):
            opal.torch.Optimizer(model, spec="muon", roles={"transformer.wte.weight": "embeding"})
        with self.assertRaisesRegex(ValueError, "no parameter is named like `lm_head.weight`"):
            opal.torch.Optimizer(model, spec="muon", roles={"lm_head.weight": "head"})  # tied: it is transformer.wte.weight
        with self.assertRaisesRegex(TypeError, "roles must be a dict"):
            opal.torch.Optimizer(model, spec="muon", roles=["head"])
        with self.assertRaisesRegex(TypeError, "model must be a torch.nn.Module"):
            opal.torch.Optimizer(model.named_parameters(), spec="muon", model="gpt2")
        with self.assertRaisesRegex(ValueError, "give one model"):
            opal.torch.Optimizer(model, spec="muon", model=LM("gpt2"))

    def test_named_parameters_alone_warn_that_role_routes_cannot_match(self):
        model = LM("llama_hf")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            opt = opal.torch.Optimizer(model.named_parameters(), spec="muon")
        self.assertTrue(any("routes embedding, head parameters by role" in str(x.message) for x in w), [str(x.message) for x in w])
        self.assertEqual(opt.route("model.embed_tokens.weight"), "matrix")  # as the warning says
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opal.torch.Optimizer(model.named_parameters(), spec="adamw")  # no role routes: nothing to say
            opal.torch.Optimizer(model.named_parameters(), spec="muon", roles={"model.embed_tokens.weight": "embedding"})


class TestSoapFactorCap(unittest.TestCase):
    def test_a_vocabulary_head_without_a_role_gets_one_factor_not_a_vocab_squared_one(self):
        # named_parameters() (no roles): the 50257-row head takes SOAP's matrix route, whose
        # max_precond_dim (10000, the reference's) leaves its long side without a factor
        head = torch.zeros(50257, 8, requires_grad=True)
        hidden_w = torch.zeros(8, 8, requires_grad=True)
        opt = opal.torch.Optimizer([("lm_head.weight", head), ("h.w", hidden_w)], spec="soap")
        self.assertEqual(opt.route("lm_head.weight"), "where(rank >= 2 && cols <= max_precond_dim)")
        self.assertEqual(sorted(opt.state[head]), ["momentum.m", "soap_basis_right.QR", "soap_basis_right.R", "soap_basis_right.v"])
        self.assertEqual(tuple(opt.state[head]["soap_basis_right.R"].shape), (8, 8))
        # a cap given to the constructor routes; a later one that would move a parameter is refused
        opt = opal.torch.Optimizer([("lm_head.weight", head), ("h.w", hidden_w)], spec="soap", max_precond_dim=4)
        self.assertEqual(opt.route("h.w"), "matrix")  # both sides past 4: Adam with SOAP's corrections
        head.grad, hidden_w.grad = torch.ones_like(head), torch.ones_like(hidden_w)
        opt.param_groups[0]["max_precond_dim"] = 16
        with self.assertRaisesRegex(Exception, "hyperparameter `max_precond_dim` decides routes: with 16 parameter `lm_head.weight`"):
            opt.step()
        self.assertEqual(opt.step_count(), 0)
        opt.param_groups[0]["max_precond_dim"] = 6  # moves nobody
        opt.step()
        self.assertEqual(opt.step_count(), 1)


if __name__ == "__main__":
    unittest.main()
