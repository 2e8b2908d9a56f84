# SGD with heavy-ball momentum, as torch.optim.SGD (coupled weight decay, optional Nesterov).
optimizer sgd(lr = 1e-2, b1 = 0.9, dampening = 0.0, wd = 0.0, nesterov = false) {
  other: l2(wd) -> heavy_ball(b1, dampening, nesterov) -> scale(lr)
}
