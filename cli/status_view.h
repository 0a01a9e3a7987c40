// Text views of the operator API's answers for the terminal: a rollout with
// per-stage progress bars and its gate, the fleet, a device and why. Pure
// functions of the JSON (and of `now` for bake times), so they are the same in
// `rollout status` and every redraw of `--watch`.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "core/rollout_machine.h"

namespace tranche::cli {

// The rollout's status.state as core's enum (nullopt when missing or unknown), for
// core::is_final / is_live / is_stopped: the one definition of each.
std::optional<core::RolloutState> rollout_state(const boost::json::object& rollout);

// "[#########...........]": `fraction` clamped to 0..1, `width` cells inside.
std::string progress_bar(double fraction, int width);

// The rollout (GET /v1/rollouts/{id}); `fleet` (GET /v1/fleet, may be null) gives
// how many devices run the version, which is how far the current stage has got.
// Under the gate's statistics: the failed exposed devices by cause against the
// stage's failure limit, the acknowledgements against min_acknowledged and, in
// the last stage, how far the rollout is from completing.
std::string render_rollout(const boost::json::object& rollout, const boost::json::object* fleet,
                           std::int64_t now_ms);
// One line per rollout for the list: id, state, channel and version, stage.
std::string render_rollout_line(const boost::json::object& rollout);
std::string render_fleet(const boost::json::object& fleet);
std::string render_device(const boost::json::object& device, std::int64_t now_ms);

}  // namespace tranche::cli
