// Routing: which compiled route of an executable description takes a parameter (its selectors:
// name patterns first, in spec order, then roles, then conditions, then the shape classes, then
// `other`, following delegations), and how the parameter is viewed (exec::tensor_view: one or many rows x cols matrices),
// with every check that can fail (names, shapes, size limits) and no allocation: the
// Optimizer's constructor and Optimizer::check_param share it.
#pragma once
#include "compiler/exec/description.h"
#include "runtime/optimizer.h"

namespace opal {

struct RoutedParam {
  size_t route;
  exec::TensorView view;
};

// `hparams`: the hyperparameters' values, which route conditions may read (null: the defaults).
RoutedParam route_param(const exec::Description& d, const ParamDesc& p, const double* hparams = nullptr);

// Whether a route condition reads hyperparameter `hparam` (index into d.hparams): its value
// decides routes, so it is fixed once the optimizer is built.
bool decides_routes(const exec::Description& d, size_t hparam);

}  // namespace opal
