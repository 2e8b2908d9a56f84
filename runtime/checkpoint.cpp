// Checkpoints: save (atomic), validate, then apply.
#include "runtime/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/disk_cache.h"
#include "support/q8.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

namespace opal {

using json = nlohmann::json;

namespace {

std::string state_key(const std::string& param, const std::string& slot) { return "state/" + param + "/" + slot; }
std::string param_key(const std::string& param) { return "param/" + param; }

// A 64-bit checksum of the whole checkpoint: metadata (but the checksum itself), tensor names,
// dtypes, shapes and bytes, in name order. 8 bytes per round, so that a multi-gigabyte state is
// checked at memory speed.
std::string checksum(const SafetensorsFile& f) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  auto mix = [&](uint64_t w) {
    h ^= w + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
  };
  auto mix_bytes = [&](const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    mix(n);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    for (; i < n; ++i) mix(uint8_t(p[i]));
  };
  for (const auto& [k, v] : f.metadata) {
    if (k == "opal.checksum") continue;
    mix_bytes(k.data(), k.size());
    mix_bytes(v.data(), v.size());
  }
  for (const auto& [name, t] : f.tensors) {
    mix_bytes(name.data(), name.size());
    mix_bytes(t.dtype.data(), t.dtype.size());
    mix_bytes(t.shape.data(), t.shape.size() * sizeof(int64_t));
    mix_bytes(t.values.data(), t.values.size() * sizeof(float));
  }
  h ^= h >> 33;
  return fmt::format("{:016x}", h);
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

std::string LoadReport::summary() const {
  std::string s = fmt::format("restored {} state slot{} at step {}", restored.size(), restored.size() == 1 ? "" : "s", step);
  if (params_restored) s += " and the parameters";
  if (spec_changed) s += "; the spec changed since the save";
  if (!initialized.empty()) s += fmt::format("; initialized as the spec says: {}", fmt::join(initialized, ", "));
  if (!dropped.empty()) s += fmt::format("; dropped (not in this spec): {}", fmt::join(dropped, ", "));
  if (!hparams_ignored.empty()) s += fmt::format("; ignored saved hyperparameters: {}", fmt::join(hparams_ignored, ", "));
  if (!converted.empty()) s += fmt::format("; converted to this spec's storage: {}", fmt::join(converted, ", "));
  return s;
}

std::string program_hash(const Optimizer& opt) { return opt.description().fingerprint; }

namespace {
// safetensors' name of a storage: a slot or parameter is saved as it is stored
const char* file_dtype(DType d) { return d == DType::F32 ? "F32" : d == DType::BF16 ? "BF16" : d == DType::F16 ? "F16" : "U8"; }

// A q8 slot's storage as the reports say it: "q8(256)".
std::string q8_name(int block) { return fmt::format("q8({})", block); }

// The slot whose scales `slot` is in this spec (its codes' slot), or "".
std::string codes_of(const Optimizer& opt, const std::string& name, const std::string& slot) {
  const std::string suffix = q8::scales_name("");
  if (slot.size() <= suffix.size() || slot.compare(slot.size() - suffix.size(), suffix.size(), suffix) != 0) return "";
  const std::string codes = slot.substr(0, slot.size() - suffix.size());
  const auto slots = opt.slots(name);
  if (std::find(slots.begin(), slots.end(), codes) == slots.end() || opt.state_dtype(name, codes) != DType::Q8) return "";
  return codes;
}

// The values of a q8 slot saved as codes (U8) and scales, per matrix of m elements.
std::vector<float> dequantize_saved(const TensorData& codes, const TensorData& scales, int block, long long m) {
  const std::vector<unsigned char> bytes(codes.values.begin(), codes.values.end());
  std::vector<float> out(bytes.size());
  q8::dequantize_matrices(bytes.data(), scales.values.data(), bytes.size(), size_t(m), block, out.data());
  return out;
}

// A q8 slot's scales that loading derives from its codes' values (the file holds the slot in
// another storage or block size): written with the codes, not restored or reported on their own.
bool derived_scales(const Optimizer& opt, const std::string& name, const std::string& slot, const std::map<std::string, TensorData>& tensors,
                    const std::map<std::string, std::pair<int, long long>>& saved_q8) {
  const std::string codes = codes_of(opt, name, slot);
  if (codes.empty()) return false;
  auto c = tensors.find(state_key(name, codes));
  auto saved = saved_q8.find(name + "/" + codes);
  return c != tensors.end() && c->second.shape == opt.state_shape(name, codes) &&
         (saved == saved_q8.end() || saved->second != opt.state_blocks(name, codes));
}
}  // namespace

SafetensorsFile checkpoint_of(const Optimizer& opt, const CheckpointOptions& opts) {
  SafetensorsFile f;
  json params = json::array();
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    json slots = json::array(), q8 = json::object();
    for (const auto& slot : opt.slots(name)) {
      f.tensors[state_key(name, slot)] = {opt.state_shape(name, slot), opt.read_state(name, slot), file_dtype(opt.state_dtype(name, slot))};
      slots.push_back(slot);
      if (const auto [block, m] = opt.state_blocks(name, slot); block) q8[slot] = {block, m};  // how its codes tile
    }
    if (opts.params) {
      f.tensors[param_key(name)] = {opt.param_shape(name), opt.read_param(name), file_dtype(opt.param_dtype(name))};
    }
    params.push_back(
        {{"name", name}, {"shape", opt.param_shape(name)}, {"route", opt.route_of(name)}, {"slots", slots}, {"step", opt.step_count(name)}});
    if (!q8.empty()) params.back()["q8"] = q8;
  }
  json hp = json::object();
  for (const auto& h : opt.hparam_names()) hp[h] = opt.hparam(h);
  f.metadata["opal.format"] = std::to_string(kCheckpointFormat);
  f.metadata["opal.optimizer"] = opt.description().name;
  f.metadata["opal.program_hash"] = program_hash(opt);
  f.metadata["opal.spec"] = opt.description().spec_text;  // the spec a person wrote
  f.metadata["opal.step"] = std::to_string(opt.step_count());
  f.metadata["opal.hparams"] = hp.dump();
  f.metadata["opal.params"] = params.dump();
  return f;
}

std::string serialize_checkpoint(const Optimizer& opt, const CheckpointOptions& opts) {
  SafetensorsFile f = checkpoint_of(opt, opts);
  f.metadata["opal.checksum"] = checksum(f);
  return serialize_safetensors(f);
}

void Optimizer::save(const std::string& path, const CheckpointOptions& opts) const { write_file_atomically(path, serialize_checkpoint(*this, opts)); }

PendingLoad prepare_load(const Optimizer& opt, SafetensorsFile file, const std::string& what) {
  auto fail = [&](const std::string& why) { return CheckpointError(fmt::format("cannot load checkpoint `{}`: {}", what, why)); };
  auto meta = [&](const char* key) -> const std::string& {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw fail(fmt::format("its metadata has no `{}`; is it an Opal checkpoint?", key));
    return it->second;
  };
  if (meta("opal.format") != std::to_string(kCheckpointFormat))
    throw fail(fmt::format("it has format {}, and this Opal reads format {}", meta("opal.format"), kCheckpointFormat));
  PendingLoad p;
  LoadReport& r = p.report;
  json params, hparams;
  try {
    params = json::parse(meta("opal.params"));
    hparams = json::parse(meta("opal.hparams"));
    size_t used = 0;
    r.step = std::stoll(meta("opal.step"), &used);
    if (used != meta("opal.step").size() || r.step < 0 || r.step > kMaxStepCount) throw std::invalid_argument("step");
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw fail(fmt::format("its metadata (opal.params, opal.hparams or opal.step) is malformed (a step is a whole number from 0 to 2^53)"));
  }
  if (!params.is_array() || !hparams.is_object()) throw fail("its metadata (opal.params or opal.hparams) is malformed");
  r.spec_changed = meta("opal.program_hash") != program_hash(opt);
  // hyperparameters first: one that decides routes, saved with a value that routes a parameter
  // elsewhere, explains every state difference that follows
  for (auto& [name, v] : hparams.items()) {
    if (!v.is_number()) throw fail(fmt::format("hyperparameter `{}` is not a number", name));
    try {
      Optimizer::check_hparam_value(name, v.get<double>());
    } catch (const Error& e) {
      throw fail(e.what());
    }
    const auto& names = opt.hparam_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      r.hparams_ignored.push_back(name);
      continue;
    }
    try {
      opt.check_set_hparam(name, v.get<double>());  // one that decides routes must move no parameter
    } catch (const Error& e) {
      throw fail(e.what());
    }
    p.hparams.emplace_back(name, v.get<double>());
  }

  // parameters: the same names with the same shapes, both ways
  std::map<std::string, std::vector<int64_t>> saved;
  for (const auto& e : params) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("shape") || !e["shape"].is_array())
      throw fail("its parameter table (opal.params) is malformed");
    std::vector<int64_t> shape;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer()) throw fail("its parameter table (opal.params) is malformed");
      shape.push_back(d.get<int64_t>());
    }
    const std::string& pname = e["name"].get_ref<const std::string&>();
    if (!saved.emplace(pname, shape).second) throw fail(fmt::format("parameter `{}` appears twice in its table", pname));
    // a parameter's own step count (older checkpoints have the optimizer's only)
    int64_t step = r.step;
    if (e.contains("step")) {
      const json& s = e["step"];
      if (!s.is_number_integer() || (s.is_number_unsigned() ? s.get<uint64_t>() > uint64_t(kMaxStepCount) : s.get<int64_t>() < 0))
        throw fail(fmt::format("parameter `{}` has a step count that is not a whole number from 0 to 2^53", pname));
      step = s.get<int64_t>();
    }
    p.param_steps[pname] = step;
    // its q8 slots: [block, elements per matrix]
    if (e.contains("q8")) {
      if (!e["q8"].is_object()) throw fail(fmt::format("parameter `{}` has a malformed q8 table", pname));
      for (const auto& [slot, bm] : e["q8"].items()) {
        if (!bm.is_array() || bm.size() != 2 || !bm[0].is_number_integer() || !bm[1].is_number_integer() ||
            !q8::valid_block(bm[0].get<long long>()) || bm[1].get<long long>() < 1)
          throw fail(fmt::format("state `{}/{}` has a malformed q8 entry (a block size and the elements per matrix)", pname, slot));
        p.q8[pname + "/" + slot] = {bm[0].get<int>(), bm[1].get<long long>()};
      }
    }
  }
  std::set<std::string> consumed;
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    auto it = saved.find(name);
    if (it == saved.end()) throw fail(fmt::format("it has no parameter `{}` (it has {} others)", name, saved.size()));
    if (it->second != opt.param_shape(name))
      throw fail(
          fmt::format("parameter `{}` has shape {} in the checkpoint but {} here", name, shape_str(it->second), shape_str(opt.param_shape(name))));
    for (const auto& slot : opt.slots(name)) {
      std::string key = state_key(name, slot);
      auto t = file.tensors.find(key);
      std::vector<int64_t> want = opt.state_shape(name, slot);
      if (derived_scales(opt, name, slot, file.tensors, p.q8)) continue;
      if (t == file.tensors.end()) {
        // a master copy not saved (a run without one): taken from the parameter
        if (!r.spec_changed && slot != kMasterSlot) throw fail(fmt::format("state `{}/{}` is missing", name, slot));
        r.initialized.push_back(name + "/" + slot);
        continue;
      }
      // any storage loads, converted (a bf16 run resumes as f32, a q8 one as bf16, and back), and
      // is reported
      const auto saved_q8 = p.q8.find(name + "/" + slot);
      const auto spec_q8 = opt.state_blocks(name, slot);
      if ((t->second.dtype == "U8") != (saved_q8 != p.q8.end()))
        throw fail(fmt::format("state `{}/{}` is {} but {} in the parameter table", name, slot, t->second.dtype,
                               saved_q8 == p.q8.end() ? "has no q8 entry" : "has a q8 entry"));
      if (saved_q8 != p.q8.end()) {  // codes: their scales and their tiling must be whole
        const auto [block, m] = saved_q8->second;
        auto sc = file.tensors.find(state_key(name, q8::scales_name(slot)));
        const size_t n = t->second.values.size();
        if (sc == file.tensors.end())
          throw fail(fmt::format("state `{}/{}` is saved as q8 codes without their scales `{}`", name, slot, q8::scales_name(slot)));
        if (n % size_t(m) || sc->second.values.size() != n / size_t(m) * q8::blocks(size_t(m), block))
          throw fail(fmt::format("state `{}/{}` has {} q8 codes and {} scales, which blocks of {} over matrices of {} do not give", name, slot, n,
                                 sc->second.values.size(), block, m));
        if (saved_q8->second != spec_q8) consumed.insert(sc->first);  // dequantized with them
      }
      const std::string from = saved_q8 != p.q8.end() ? q8_name(saved_q8->second.first) : t->second.dtype;
      const std::string to = spec_q8.first ? q8_name(spec_q8.first) : file_dtype(opt.state_dtype(name, slot));
      if (from != to) r.converted.push_back(fmt::format("{}/{} ({} -> {})", name, slot, from, to));
      if (t->second.shape != want) {
        if (!r.spec_changed)
          throw fail(
              fmt::format("state `{}/{}` has shape {} in the checkpoint but {} here", name, slot, shape_str(t->second.shape), shape_str(want)));
        r.initialized.push_back(fmt::format("{}/{} (shape {} now {})", name, slot, shape_str(t->second.shape), shape_str(want)));
        consumed.insert(key);
        continue;
      }
      r.restored.push_back(name + "/" + slot);
      consumed.insert(key);
    }
    if (auto w = file.tensors.find(param_key(name)); w != file.tensors.end()) {
      if (w->second.dtype != file_dtype(opt.param_dtype(name)))
        r.converted.push_back(fmt::format("param/{} ({} -> {})", name, w->second.dtype, file_dtype(opt.param_dtype(name))));
      if (w->second.shape != opt.param_shape(name))
        throw fail(
            fmt::format("the values of parameter `{}` have shape {}, not {}", name, shape_str(w->second.shape), shape_str(opt.param_shape(name))));
      consumed.insert(param_key(name));
      r.params_restored = true;
    } else if (r.params_restored) {
      throw fail(fmt::format("it has values for some parameters, but none for `{}`", name));
    }
  }
  if (saved.size() != opt.num_params())
    for (const auto& [name, _] : saved)
      if (!opt.has_param(name)) throw fail(fmt::format("it has parameter `{}`, which this optimizer does not have", name));
  for (const auto& [key, _] : file.tensors) {
    if (consumed.count(key)) continue;
    if (key.rfind("state/", 0) != 0) throw fail(fmt::format("it has an unexpected tensor `{}`", key));
    const std::string master_suffix = std::string("/") + kMasterSlot;  // a run with master copies, resumed without
    const bool master = key.size() > master_suffix.size() && key.compare(key.size() - master_suffix.size(), master_suffix.size(), master_suffix) == 0;
    if (!r.spec_changed && !master) throw fail(fmt::format("it has state `{}` that this spec does not keep", key.substr(6)));
    r.dropped.push_back(key.substr(6));
  }
  p.file = std::move(file);
  return p;
}

PendingLoad prepare_load_bytes(const Optimizer& opt, const std::string& bytes, const std::string& what) {
  SafetensorsFile f;
  try {
    f = parse_safetensors(bytes, what);
  } catch (const Error& e) {
    throw CheckpointError(fmt::format("cannot load checkpoint: {}", e.what()));
  }
  auto it = f.metadata.find("opal.checksum");
  if (it == f.metadata.end())
    throw CheckpointError(fmt::format("cannot load checkpoint `{}`: it has no checksum (opal.checksum); is it an Opal checkpoint?", what));
  if (checksum(f) != it->second)
    throw CheckpointError(fmt::format("cannot load checkpoint `{}`: its data does not match its checksum (the file is corrupt)", what));
  return prepare_load(opt, std::move(f), what);
}

LoadReport apply_load(Optimizer& opt, PendingLoad&& p) {
  const auto& tensors = p.file.tensors;
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    // the parameter first: a master copy (state `master`) then overrides what writing it set
    if (auto w = tensors.find(param_key(name)); w != tensors.end()) {
      opt.write_param(name, w->second.values);
    }
    for (const auto& slot : opt.slots(name)) {
      if (derived_scales(opt, name, slot, tensors, p.q8)) continue;
      auto t = tensors.find(state_key(name, slot));
      if (t == tensors.end() || t->second.shape != opt.state_shape(name, slot)) {
        opt.reset_state(name, slot);
        continue;
      }
      auto saved = p.q8.find(name + "/" + slot);
      if (saved == p.q8.end() && !opt.state_blocks(name, slot).first) opt.write_state(name, slot, t->second.values);
      else if (saved != p.q8.end() && saved->second == opt.state_blocks(name, slot)) opt.write_state(name, slot, t->second.values);  // the same codes
      else if (saved == p.q8.end()) opt.write_state_values(name, slot, t->second.values);                                            // quantized
      else
        opt.write_state_values(
            name, slot, dequantize_saved(t->second, tensors.at(state_key(name, q8::scales_name(slot))), saved->second.first, saved->second.second));
    }
  }
  opt.set_step_count(p.report.step);
  for (const auto& [name, t] : p.param_steps)
    if (opt.has_param(name)) opt.set_step_count(name, t);
  for (const auto& [name, v] : p.hparams) opt.set_hparam(name, v);
  return std::move(p.report);
}

LoadReport Optimizer::load(const std::string& path) { return apply_load(*this, prepare_load_bytes(*this, read_safetensors_bytes(path), path)); }

}  // namespace opal
