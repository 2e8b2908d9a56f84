# AdaMuon as its paper's Algorithm 1 (seed 003): heavy-ball M <- b1*M + G; O = NS5(sign(M))
# with Keller's triple; V <- b1*V + (1-b1)*O^2 (no bias correction); O_hat = O / (sqrt(V) + eps);
# u = 0.2*sqrt(mn) / ||O_hat||_F * O_hat (RMS alignment); W <- W - lr*(u + wd*W). Embeddings,
# heads (by role) and vectors: AdamW.
optimizer adamuon(lr = 1e-3, b1 = 0.95, eps = 1e-8, wd = 0.1, adam_b1 = 0.9, adam_b2 = 0.95) {
  matrix: heavy_ball(b1) -> sign -> ns(coeffs = keller, shape_scale = false, eps = 1e-7)
          -> adapt(b1, eps, of = u, bias_correction = false) -> rms_match(0.2, align = true)
          -> decay(wd) -> scale(lr)
  embedding, head, other: adamw(lr = lr, b1 = adam_b1, b2 = adam_b2, wd = wd)
}
