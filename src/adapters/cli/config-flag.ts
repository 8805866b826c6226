/**
 * The `--config FILE` flag both commands share, and the settings layer it selects.
 * Easy to get wrong: `ccl-delegate decide` must answer as the daemon would, so both commands read the settings
 * through the same lookup (`Config.layerWithFile`), never `Config.layer` (env only) in one and the file in the other.
 */
import * as Flag from "effect/cli/Flag"

export const configFlag = Flag.String("config").pipe(
  Flag.withDescription(
    "A YAML file of settings (keys: the env names in lower case, e.g. queue_dir; the env wins over it). " +
      "Without this flag: the file named by CLAUDE_FAILOVER_CONFIG, else ~/.config/claude-failover/config.yaml " +
      "($XDG_CONFIG_HOME/claude-failover/config.yaml) if it exists"
  ),
  Flag.optional
)
