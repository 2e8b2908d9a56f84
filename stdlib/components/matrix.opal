# Matrix components: bases, orthogonalization, Kronecker preconditioners, RMS matching.
# In Opal's layout a matrix parameter is rows x cols = (out, in), as in PyTorch.

# Newton-Schulz orthogonalization (Muon's matrix sign): u <- NS(u) * scale.
# NS divides by the Frobenius norm (+ eps), runs `steps` quintic iterations on the wide
# orientation (transposing tall inputs, as the references do) and transposes back.
# coeffs: `you` (Jiacheng You's per-step triples, the seed paper's code) or `keller` (one triple,
# Keller Jordan's Muon). bf16 runs the iteration in bfloat16 as Muon does.
# shape_scale multiplies by sqrt(max(1, rows/cols)) (fan_out/fan_in), as both references do.
# A nonlinear basis: it maps u only; g is unchanged.
component ns(steps = 5, coeffs = you, bf16 = false, eps = 1e-8 in [0, inf), shape_scale = true) {
  u = newton_schulz(u, steps, coeffs, bf16, eps) * select(shape_scale, sqrt(max(1, rows / cols)), 1)
}

# The Shampoo eigenbasis (SOAP, SPlus, SPA): Kronecker factors L = E[g g^T], R = E[g^T g] of
# the gradient entering the basis (EMA with beta, the reference uses the variance's b2), and
# Q_L, Q_R their eigenvectors, refreshed after step 1 and then every `every` steps (after the
# update: a step uses the basis of the last refresh). Inside, u and g are Q_L^T x Q_R.
# zero_first passes g = 0 inward on step 1 (the seed paper's SOAP zeroes its variance then).
# power_qr refreshes after the first by one power iteration and QR (SOAP's authors' method)
# instead of a full eigendecomposition.
component eigenbasis(beta = 0.99 in [0, 1), every = 10 in [1, inf) whole, zero_first = false, power_qr = false) {
  state L = zeros(rows, rows)
  state R = zeros(cols, cols)
  state QL = eye(rows)
  state QR = eye(cols)
  let ql = QL
  let qr = QR
  let graw = g
  u = transpose(ql) @ u @ qr
  g = select(zero_first && t == 1, 0, transpose(ql) @ g @ qr)
  L = beta * L + (1 - beta) * (graw @ transpose(graw))
  R = beta * R + (1 - beta) * (transpose(graw) @ graw)
  every(every) {
    QL = select(power_qr && t > 1, qr(L @ QL), eigh(L))
    QR = select(power_qr && t > 1, qr(R @ QR), eigh(R))
  }
  inverse {
    u = ql @ u @ transpose(qr)
  }
}

# SOAP exactly as its authors' code (nikhilvyas/SOAP): the basis and the Adam variance in it.
# Step 1 only accumulates the factors and takes their eigenbasis (descending); the update is
# zero and its step count s = t - 1 drives the bias corrections, folded into the step as the
# reference does: u = rot(m) / (sqrt(v) + eps) * sqrt(1 - b2^s) / (1 - b1^s), with m the
# (uncorrected) momentum entering the basis. Refreshes after steps where s % every == 0 sort the
# basis by its estimated eigenvalues diag(Q^T S Q) (descending), permute the variance with it,
# and take one power iteration S Q and a QR.
component soap_basis(b1 = 0.95 in [0, 1), b2 = 0.95 in [0, 1), shampoo_beta = 0.95 in [0, 1), eps = 1e-8 in [0, inf), every = 10 in [1, inf) whole) {
  state L = zeros(rows, rows)
  state R = zeros(cols, cols)
  state QL = eye(rows)
  state QR = eye(cols)
  state v = zeros
  let ql0 = QL
  let qr0 = QR
  let first = t == 1
  let gr = transpose(ql0) @ g @ qr0
  v = select(first, v, b2 * v + (1 - b2) * gr * gr)
  let s = t - 1
  u = select(first, 0, (transpose(ql0) @ u @ qr0) / (sqrt(v) + eps) * (sqrt(1 - b2 ^ s) / (1 - b1 ^ s)))
  L = shampoo_beta * L + (1 - shampoo_beta) * (g @ transpose(g))
  R = shampoo_beta * R + (1 - shampoo_beta) * (transpose(g) @ g)
  when(first) {
    QL = eigh_desc(L)
    QR = eigh_desc(R)
  }
  when(t > 1 && mod(s, every) == 0) {
    let pl = argsort_desc(diag(transpose(QL) @ L @ QL))
    let pr = argsort_desc(diag(transpose(QR) @ R @ QR))
    v = permute_cols(permute_rows(v, pl), pr)
    QL = qr(L @ permute_cols(QL, pl))
    QR = qr(R @ permute_cols(QR, pr))
  }
  inverse {
    u = ql0 @ u @ transpose(qr0)
  }
}

# SOAP with one factor, for a side past the reference's max_precond_dim (its `GG[i] = []`): the
# other side keeps its identity basis. `soap_basis_right`: rows too many, u <- u QR; the
# variance is re-sorted by columns only. `soap_basis_left`: cols too many, u <- QL^T u.
component soap_basis_right(b1 = 0.95 in [0, 1), b2 = 0.95 in [0, 1), shampoo_beta = 0.95 in [0, 1), eps = 1e-8 in [0, inf), every = 10 in [1, inf) whole) {
  state R = zeros(cols, cols)
  state QR = eye(cols)
  state v = zeros
  let qr0 = QR
  let first = t == 1
  let gr = g @ qr0
  v = select(first, v, b2 * v + (1 - b2) * gr * gr)
  let s = t - 1
  u = select(first, 0, (u @ qr0) / (sqrt(v) + eps) * (sqrt(1 - b2 ^ s) / (1 - b1 ^ s)))
  R = shampoo_beta * R + (1 - shampoo_beta) * (transpose(g) @ g)
  when(first) {
    QR = eigh_desc(R)
  }
  when(t > 1 && mod(s, every) == 0) {
    let pr = argsort_desc(diag(transpose(QR) @ R @ QR))
    v = permute_cols(v, pr)
    QR = qr(R @ permute_cols(QR, pr))
  }
  inverse {
    u = u @ transpose(qr0)
  }
}

component soap_basis_left(b1 = 0.95 in [0, 1), b2 = 0.95 in [0, 1), shampoo_beta = 0.95 in [0, 1), eps = 1e-8 in [0, inf), every = 10 in [1, inf) whole) {
  state L = zeros(rows, rows)
  state QL = eye(rows)
  state v = zeros
  let ql0 = QL
  let first = t == 1
  let gr = transpose(ql0) @ g
  v = select(first, v, b2 * v + (1 - b2) * gr * gr)
  let s = t - 1
  u = select(first, 0, (transpose(ql0) @ u) / (sqrt(v) + eps) * (sqrt(1 - b2 ^ s) / (1 - b1 ^ s)))
  L = shampoo_beta * L + (1 - shampoo_beta) * (g @ transpose(g))
  when(first) {
    QL = eigh_desc(L)
  }
  when(t > 1 && mod(s, every) == 0) {
    let pl = argsort_desc(diag(transpose(QL) @ L @ QL))
    v = permute_rows(v, pl)
    QL = qr(L @ permute_cols(QL, pl))
  }
  inverse {
    u = ql0 @ u
  }
}

# SOAP with no factor (both sides past max_precond_dim): Adam in the original basis with SOAP's
# bias corrections (the first step only sets up, so s = t - 1 steps of statistics).
component soap_adam(b1 = 0.95 in [0, 1), b2 = 0.95 in [0, 1), eps = 1e-8 in [0, inf)) {
  state v = zeros
  let first = t == 1
  v = select(first, v, b2 * v + (1 - b2) * g * g)
  let s = t - 1
  u = select(first, 0, u / (sqrt(v) + eps) * (sqrt(1 - b2 ^ s) / (1 - b1 ^ s)))
}

# Shampoo preconditioning (the seed paper's eq. 4): u <- L^(-1/4) u R^(-1/4) with L = E[g g^T], R = E[g^T g]
# (EMA with beta) and damping eps I inside the root. The roots are recomputed from the current
# factors after step 1 and every `every` steps, before they are applied.
component shampoo_precond(beta = 0.99 in [0, 1), eps = 1e-12 in [0, inf), every = 10 in [1, inf) whole) {
  state L = zeros(rows, rows)
  state R = zeros(cols, cols)
  state PL = eye(rows)
  state PR = eye(cols)
  L = beta * L + (1 - beta) * (g @ transpose(g))
  R = beta * R + (1 - beta) * (transpose(g) @ g)
  every(every) {
    PL = inv_root_damped(L, 4, eps)
    PR = inv_root_damped(R, 4, eps)
  }
  u = PL @ u @ PR
}

# The seed paper's "Shampoo" exactly as its code (MW shampoo.py): Adam-normalised momentum
# m_hat / (sqrt(v) + eps) (v uncorrected) preconditioned by inverse 4th roots of Kronecker
# factors of the Adam-normalised gradient (divided by the other dimension), rescaled by the
# mean square root of the right factor's diagonal before its update (zero on step 1). Roots:
# 1 / (|lambda|^(1/4) + eps) of the bias-corrected factors, refreshed after step 1 and every
# `every` steps. The reference's fan-in side is Opal's right side.
component shampoo_ref(b1 = 0.9 in [0, 1), b2 = 0.99 in [0, 1), every = 10 in [1, inf) whole, eps = 1e-8 in [0, inf)) {
  state m = zeros
  state v = zeros
  state L = zeros(rows, rows)
  state R = zeros(cols, cols)
  state PL = eye(rows)
  state PR = eye(cols)
  v = b2 * v + (1 - b2) * g * g
  m = b1 * m + (1 - b1) * g
  let mt = m / (1 - b1 ^ t) / (sqrt(v) + eps)
  let gt = g / (sqrt(v) + eps)
  let s = mean(sqrt(diag(R)))
  u = PL @ mt @ PR * s
  L = b2 * L + (1 - b2) * (gt @ transpose(gt)) / cols
  R = b2 * R + (1 - b2) * (transpose(gt) @ gt) / rows
  every(every) {
    PL = inv_root(L / (1 - b2 ^ t), 4, eps)
    PR = inv_root(R / (1 - b2 ^ t), 4, eps)
  }
}

# RMS matching. Moonlight: u <- rms * sqrt(max(rows, cols)) * u (for an orthogonalized u, RMS
# about rms). align = true is AdaMuon's alignment: u <- u * rms * sqrt(rows * cols) / (||u||_F + eps),
# an RMS of exactly rms.
component rms_match(rms = 0.2 in [0, inf), align = false, eps = 1e-8 in [0, inf)) {
  u = select(align, u * (rms * sqrt(numel) / (norm(u) + eps)), u * (rms * sqrt(max(rows, cols))))
}

# NorMuon's row-wise second moment (official code): v <- beta*v + (1-beta)*row_mean(u^2),
# one value per output row; u <- u / (sqrt(v) + eps), then rescaled to keep its Frobenius norm
# (preserve_norm, the official code) instead of the paper's 0.2*sqrt(mn).
component adapt_rows(beta = 0.95 in [0, 1), eps = 1e-10 in [0, inf), preserve_norm = true) {
  state v = zeros(rows)
  v = beta * v + (1 - beta) * row_mean(u * u)
  let o = u
  u = u / (sqrt(v) + eps)
  u = select(preserve_norm, u * (norm(o) / (norm(u) + eps)), u)
}

# PSGD's Kronecker preconditioner (psgd_jax, as the seed paper's code runs it): upper-triangular
# factors Q_L, Q_R (identity at first) fitted every step on the damped input
# G = u + damping * mean|u| * V (V ~ N(0,1), Opal's counter-based randn):
#   A = Q_L G Q_R^T,  B = Q_L^-T V Q_R^-1 (triangular solves),
#   Q <- Q - lr_precond / nlb(T1 + T2) * triu(T1 - T2) Q, with (T1, T2) = (A A^T, B B^T) for
#   Q_L and (A^T A, B^T B) for Q_R, both from the old factors (nlb: a cheap lower bound of
#   the spectral norm); then u <- Q_L^T Q_L u Q_R^T Q_R, clipped to RMS at most `clip`.
# The reference's occasional factor balancing is a no-op in exact arithmetic and is omitted.
component psgd_kron(lr_precond = 0.1, damping = 3.4526698e-4, clip = 1.1) {
  state QL = eye(rows)
  state QR = eye(cols)
  let v = randn()
  let gd = u + damping * mean(abs(u)) * v
  let a = QL @ gd @ transpose(QR)
  let b = tri_solve_right(tri_solve_left(QL, v), QR)
  let t1l = a @ transpose(a)
  let t2l = b @ transpose(b)
  let t1r = transpose(a) @ a
  let t2r = transpose(b) @ b
  QL = QL - lr_precond / (nlb(t1l + t2l) + 1.1754944e-38) * (triu(t1l - t2l) @ QL)
  QR = QR - lr_precond / (nlb(t1r + t2r) + 1.1754944e-38) * (triu(t1r - t2r) @ QR)
  let p = transpose(QL) @ QL @ u @ transpose(QR) @ QR
  u = p / max(1, rms(p) / clip)
}
