// The eigenbasis family (SOAP, SPlus, SPA, Shampoo) against naive references (see
// matrix_reference.h).
#include "tests/numerics/matrix_reference.h"
#include "tests/unit/error_of.h"

using namespace opal::testing;
using namespace opal::testing::matrix;
using M = Eigen::MatrixXd;

TEST_SUITE("numerics") {

// The reference's eigenbasis (algorithms.md 3.3): factors of the raw gradient with the variance's
// b2, Q_L, Q_R refreshed by eigh after step 1 and every N steps, after the step's update.
struct RefBasis {
  M L, R, QL, QR;
  explicit RefBasis(const ParamCase& p)
      : L(M::Zero(p.rows(), p.rows())), R(M::Zero(p.cols(), p.cols())), QL(M::Identity(p.rows(), p.rows())), QR(M::Identity(p.cols(), p.cols())) {}
  M rot(const M& X) const { return QL.transpose() * X * QR; }
  M unrot(const M& X) const { return QL * X * QR.transpose(); }
  void update(const M& G, double b2, int t, double every) {
    L = b2 * L + (1 - b2) * G * G.transpose();
    R = b2 * R + (1 - b2) * G.transpose() * G;
    if (refresh(t, every)) {
      QL = ref_eigh(L);
      QR = ref_eigh(R);
    }
  }
};

// MW soap.py (4.6) and the Table 2 cells built on it
M soap_mw_step(const ParamCase& p, const Paper& h, int variant, const M& G, const M& W, int t, M& m, M& v, RefBasis& q, FactoredRef& fr) {
  M u = M::Zero(p.rows(), p.cols());
  if (t > 1) {  // step 1: u, m, v := 0
    m = h.b1 * m + (1 - h.b1) * G;
    M gr = q.rot(G);
    M vh;
    if (variant == 1) {
      vh = fr.update(gr, h.b2, t);
    } else {
      v = h.b2 * v + (1 - h.b2) * gr.cwiseProduct(gr);
      vh = v / (1 - std::pow(h.b2, t));
    }
    M mh = q.rot(m) / (1 - std::pow(h.b1, t));
    u = q.unrot(M(mh.array() / (vh.array().sqrt() + 1e-8)));
  }
  q.update(G, h.b2, t, h.every);
  return h.lr_at(t) * (u + h.wd * W);
}

TEST_CASE("paper_soap10/100, _b1b1, _factored: MW soap.py with refreshes after step 1 and every N") {
  struct Case {
    const char* spec;
    int variant;  // 0 full, 1 factored
    bool b1b1;
  };
  for (Case c :
       {Case{"paper_soap10", 0, false}, Case{"paper_soap100", 0, false}, Case{"paper_soap_b1b1", 0, true}, Case{"paper_soap_factored", 1, false}}) {
    Paper h{3.11e-3, 0.316, 0.9, c.b1b1 ? 0.9 : 0.99, 4};
    auto hp = h.hp();
    if (c.b1b1) hp.erase("b2");
    for (const auto* shapes : {&kShapes, &kBigShapes}) {
      double err = compare_run(c.spec, *shapes, hp, [&](const ParamCase& p) -> RefStep {
        struct S {
          M m, v;
          RefBasis q;
          FactoredRef fr;
        };
        auto s = std::make_shared<S>(S{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.cols()), RefBasis(p), {}});
        return [=](const M& G, const M& W, int t) { return soap_mw_step(p, h, c.variant, G, W, t, s->m, s->v, s->q, s->fr); };
      });
      CHECK(err < 1e-4);
    }
  }
}

TEST_CASE("eigenbasis(power_qr = true): eigh after step 1, then one power iteration and QR per refresh") {
  const char* spec = R"(optimizer soap_qr(lr = 1e-2, b1 = 0.9, b2 = 0.99, every = 4) {
    matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true, power_qr = true))
            -> adapt(b2, 1e-8) -> unrotate -> scale(lr)
  })";
  const double lr = 1e-2, b1 = 0.9, b2 = 0.99, every = 4;
  // small shapes: on 64x256 the first QR multiplies the 192 null directions of the step-1 basis
  // by an ill-conditioned factor, and fp32 decides the QR's later columns (6e-4 there)
  double err = compare_run(spec, kShapes, {}, [&](const ParamCase& p) -> RefStep {
    auto st = std::make_shared<std::array<M, 6>>(std::array<M, 6>{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.cols()),
                                                                  M::Zero(p.rows(), p.rows()), M::Zero(p.cols(), p.cols()),
                                                                  M::Identity(p.rows(), p.rows()), M::Identity(p.cols(), p.cols())});
    return [=](const M& G, const M&, int t) {
      auto& [m, v, L, R, QL, QR] = *st;
      M u = M::Zero(p.rows(), p.cols());
      if (t > 1) {
        m = b1 * m + (1 - b1) * G;
        M gr = QL.transpose() * G * QR;
        v = b2 * v + (1 - b2) * gr.cwiseProduct(gr);
        M mh = QL.transpose() * m * QR / (1 - std::pow(b1, t));
        u = QL * M(mh.array() / ((v / (1 - std::pow(b2, t))).array().sqrt() + 1e-8)) * QR.transpose();
      }
      L = b2 * L + (1 - b2) * G * G.transpose();
      R = b2 * R + (1 - b2) * G.transpose() * G;
      if (t == 1) {
        QL = ref_eigh(L);
        QR = ref_eigh(R);
      } else if (t % int(every) == 0) {
        Eigen::HouseholderQR<M> ql(L * QL), qr(R * QR);
        QL = ql.householderQ() * M::Identity(QL.rows(), QL.cols());
        QR = qr.householderQ() * M::Identity(QR.rows(), QR.cols());
      }
      return M(lr * u);
    };
  });
  CHECK(err < 1e-4);
}

TEST_CASE("paper_splus10/100 and paper_splus_lookahead: MW splus.py") {
  for (double lam : {0.0, 0.1}) {
    Paper h{0.1, 0.01, 0.99, 0.968, 4};
    auto hp = h.hp();
    if (lam > 0) hp["b3"] = lam;
    for (const char* spec :
         lam > 0 ? std::vector<const char*>{"paper_splus_lookahead"} : std::vector<const char*>{"paper_splus10", "paper_splus100"}) {
      // Sign in an eigenbasis is discontinuous where rotated entries vanish. On 64x256 and
      // 256x64 the first basis (from one gradient) is rank-deficient and rot(g1) has exact
      // zeros off its diagonal, so fp32 noise decides signs there: two exact implementations
      // differ by sign flips (3e-4..2e-2). The small shapes are well-determined.
      double err = compare_run(
          spec, kShapes, hp,
          [&](const ParamCase& p) -> RefStep {
            auto m = std::make_shared<M>(M::Zero(p.rows(), p.cols()));
            auto q = std::make_shared<RefBasis>(p);
            return [=](const M& G, const M& W, int t) {
              *m = h.b1 * *m + (1 - h.b1) * G;
              M c = (1 - lam) * *m + lam * G;
              M u = q->unrot(sgnm(q->rot(c))) * (2.0 / double(p.rows() + p.cols()));
              q->update(G, h.b2, t, h.every);
              return M(h.lr_at(t) * (u + h.wd * W));
            };
          },
          11, true);
      CHECK(err < 1e-4);
    }
  }
}

TEST_CASE("paper_spa: MW spa.py (variance of the unrotated sign, step-1 zeroing)") {
  Paper h{1.75e-3, 0.316, 0.9, 0.99, 4};
  // sign in an eigenbasis: well-determined shapes only (see paper_splus)
  double err = compare_run("paper_spa", kShapes, h.hp(), [&](const ParamCase& p) -> RefStep {
    auto st = std::make_shared<std::array<M, 2>>(std::array<M, 2>{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.cols())});
    auto q = std::make_shared<RefBasis>(p);
    return [=](const M& G, const M& W, int t) {
      auto& [m, v] = *st;
      M u = M::Zero(p.rows(), p.cols());
      if (t > 1) {
        m = h.b1 * m + (1 - h.b1) * G;
        M S = q->unrot(sgnm(q->rot(m)));
        v = h.b2 * v + (1 - h.b2) * S.cwiseProduct(S);
        u = S.array() / ((v / (1 - std::pow(h.b2, t))).array().sqrt() + 1e-16);
      }
      q->update(G, h.b2, t, h.every);
      return M(h.lr_at(t) * (u + h.wd * W));
    };
  });
  CHECK(err < 1e-4);
}

TEST_CASE("paper_shampoo10/100: MW shampoo.py, computed in the reference's (in, out) layout") {
  for (const char* spec : {"paper_shampoo10", "paper_shampoo100"}) {
    Paper h{1.32e-3, 1.0, 0.9, 0.99, 4};
    double err = compare_run(spec, kShapes, h.hp(), [&](const ParamCase& p) -> RefStep {
      const int64_t mi = p.cols(), no = p.rows();  // fan_in, fan_out
      auto st = std::make_shared<std::array<M, 6>>(
          std::array<M, 6>{M::Zero(mi, no), M::Zero(mi, no), M::Zero(mi, mi), M::Zero(no, no), M::Identity(mi, mi), M::Identity(no, no)});
      return [=](const M& Gt, const M& Wt, int t) {
        auto& [m, v, L, R, PL, PR] = *st;
        M G = Gt.transpose();  // (in, out)
        v = h.b2 * v + (1 - h.b2) * G.cwiseProduct(G);
        m = h.b1 * m + (1 - h.b1) * G;
        M den = (v.array().sqrt() + 1e-8).matrix();
        M Mt = (m / (1 - std::pow(h.b1, t))).cwiseQuotient(den);
        M gt = G.cwiseQuotient(den);
        double s = L.diagonal().array().sqrt().mean();
        M u = PL * Mt * PR * s;
        L = h.b2 * L + (1 - h.b2) * gt * gt.transpose() / double(no);
        R = h.b2 * R + (1 - h.b2) * gt.transpose() * gt / double(mi);
        if (refresh(t, h.every)) {
          auto root = [](double l) { return 1.0 / (std::pow(std::abs(l), 0.25) + 1e-8); };
          PL = ref_matfn(L / (1 - std::pow(h.b2, t)), root);
          PR = ref_matfn(R / (1 - std::pow(h.b2, t)), root);
        }
        return M(h.lr_at(t) * (u.transpose() + h.wd * Wt));
      };
    });
    CHECK(err < 1e-4);
  }
}

TEST_CASE("shampoo: eq. 4 with damped inverse 4th roots of EMA factors") {
  const double lr = 1e-3, b1 = 0.9, b2 = 0.99, eps = 1e-6, wd = 0.01, every = 4;
  for (const auto* shapes : {&kShapes, &kBigShapes}) {
    double err = compare_run(
        "shampoo", *shapes, {{"lr", lr}, {"b1", b1}, {"b2", b2}, {"eps", eps}, {"wd", wd}, {"every", every}}, [&](const ParamCase& p) -> RefStep {
          auto st = std::make_shared<std::array<M, 5>>(std::array<M, 5>{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.rows()),
                                                                        M::Zero(p.cols(), p.cols()), M::Identity(p.rows(), p.rows()),
                                                                        M::Identity(p.cols(), p.cols())});
          return [=](const M& G, const M& W, int t) {
            auto& [m, L, R, PL, PR] = *st;
            m = b1 * m + (1 - b1) * G;
            L = b2 * L + (1 - b2) * G * G.transpose();
            R = b2 * R + (1 - b2) * G.transpose() * G;
            if (refresh(t, every)) {
              auto root = [&](double l) { return std::pow(std::max(l, 0.0) + eps, -0.25); };
              PL = ref_matfn(L, root);
              PR = ref_matfn(R, root);
            }
            return M(lr * (PL * m * PR + wd * W));
          };
        });
    // 64x256 and 256x64: after a few steps the 256-sided factor is square-Wishart-like, with
    // eigenvalues down to the fp32 rounding of the factor itself; the inverse root magnifies
    // that rounding to 2e-4 (1e-5..6e-5 on the small shapes)
    CHECK(err < (shapes == &kBigShapes ? 3e-4 : 1e-4));
  }
}

// The authors' SOAP, with max_precond_dim: a side longer than it has no factor (its `GG[i] = []`:
// an identity basis, never refreshed).
double soap_vs_reference(const std::vector<ParamCase>& shapes, double max_dim) {
  const double lr = 3e-3, b1 = 0.95, b2 = 0.95, sb = 0.9, eps = 1e-8, wd = 0.01, every = 8;
  std::map<std::string, double> hp = {{"lr", lr}, {"b1", b1}, {"b2", b2}, {"shampoo_beta", sb}, {"eps", eps}, {"wd", wd}, {"every", every}};
  if (max_dim > 0) hp["max_precond_dim"] = max_dim;
  const double cap = max_dim > 0 ? max_dim : 1e300;
  return compare_run(
      "soap", shapes, hp,
      [&](const ParamCase& p) -> RefStep {
        const bool use_side[2] = {double(p.rows()) <= cap, double(p.cols()) <= cap};
        auto st = std::make_shared<std::array<M, 6>>(std::array<M, 6>{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.cols()),
                                                                      M::Zero(p.rows(), p.rows()), M::Zero(p.cols(), p.cols()), M(), M()});
        return [=](const M& G, const M& W, int t) -> M {
          auto& [m, v, L, R, QL, QR] = *st;
          if (t == 1) {  // initialise GG and Q only
            L = (1 - sb) * G * G.transpose();
            R = (1 - sb) * G.transpose() * G;
            QL = use_side[0] ? ref_eigh(L, true) : M(M::Identity(p.rows(), p.rows()));
            QR = use_side[1] ? ref_eigh(R, true) : M(M::Identity(p.cols(), p.cols()));
            return M::Zero(p.rows(), p.cols());
          }
          const int s = t - 1;
          M gr = QL.transpose() * G * QR;
          M mr = QL.transpose() * m * QR;  // exp_avg kept in the rotated basis: b1 * mr + (1-b1) * gr
          mr = b1 * mr + (1 - b1) * gr;
          m = QL * mr * QR.transpose();
          v = b2 * v + (1 - b2) * gr.cwiseProduct(gr);
          M n = QL * M(mr.array() / (v.array().sqrt() + eps)) * QR.transpose();
          double step = lr * std::sqrt(1 - std::pow(b2, s)) / (1 - std::pow(b1, s));
          M Wn = W - step * n;
          Wn = Wn - lr * wd * Wn;
          L = sb * L + (1 - sb) * G * G.transpose();
          R = sb * R + (1 - sb) * G.transpose() * G;
          if (s % int(every) == 0) {
            for (int side = 0; side < 2; ++side) {
              if (!use_side[side]) continue;
              M& Q = side == 0 ? QL : QR;
              const M& S = side == 0 ? L : R;
              Eigen::VectorXd est = (Q.transpose() * S * Q).diagonal();
              std::vector<int64_t> idx(est.size());
              std::iota(idx.begin(), idx.end(), 0);
              std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return est(a) > est(b); });
              M Qs(Q.rows(), Q.cols()), vs = v;
              for (size_t k = 0; k < idx.size(); ++k) {
                Qs.col(k) = Q.col(idx[k]);
                if (side == 0) vs.row(k) = v.row(idx[k]);
                else vs.col(k) = v.col(idx[k]);
              }
              v = vs;
              Eigen::HouseholderQR<M> qr(S * Qs);
              Q = qr.householderQ() * M::Identity(Q.rows(), Q.cols());
            }
          }
          return M(W - Wn);
        };
      },
      11, true);
}

TEST_CASE("soap: the authors' SOAP (descending eigh, power iteration + QR with the variance re-sorted)") {
  // 64x256 and 256x64: the first basis has a large numerical null space, and the first QR
  // refresh orders those directions by estimated eigenvalues computed in fp32; the result
  // agrees to 2e-4 (1e-5 on the full-rank square and small shapes).
  CHECK(soap_vs_reference(kShapes, 0) < 1e-4);
  CHECK(soap_vs_reference(kBigShapes, 0) < 3e-4);
}

TEST_CASE("soap's max_precond_dim: one-sided bases past it, Adam with SOAP's corrections past it on both sides") {
  // 24x24, 16x40, 40x16: at 30 the square keeps both factors, the others one each; at 20 the
  // square has none; at 16 only the 16-long sides keep theirs
  for (double max_dim : {30.0, 20.0, 16.0}) {
    CAPTURE(max_dim);
    CHECK(soap_vs_reference(kShapes, max_dim) < 1e-4);
  }
  std::vector<opal::ParamDesc> ps = {{"sq", {24, 24}}, {"wide", {16, 40}}, {"tall", {40, 16}}};
  opal::Optimizer opt(opal::build_executable(opal::SpecRef{"soap", "", ""}), ps, {{"max_precond_dim", 20}});
  CHECK(opt.route_of("sq") == "matrix");
  CHECK(opt.route_of("wide") == "where(rank >= 2 && rows <= max_precond_dim)");
  CHECK(opt.route_of("tall") == "where(rank >= 2 && cols <= max_precond_dim)");
  CHECK(opt.state_shape("wide", "soap_basis_left.L") == std::vector<int64_t>{16, 16});
  CHECK(opt.slots("sq") == std::vector<std::string>{"momentum.m", "soap_adam.v"});
  // it decides routes: a value that would move a parameter is refused and changes nothing; one
  // that moves none is taken
  CHECK(error_of([&] { opt.set_hparam("max_precond_dim", 30); }).find("`sq` would take route") != std::string::npos);
  CHECK(opt.hparam("max_precond_dim") == 20);
  opt.set_hparam("max_precond_dim", 23);
  CHECK(opt.hparam("max_precond_dim") == 23);
}

}  // TEST_SUITE
