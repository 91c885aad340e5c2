// PostGraphile v5 serving the benchmark's PostgreSQL database (the current
// release; the harness runs it beside v4 in benches/postgraphile). Started by
// the harness with `node serve.mjs` under Node 22, DATABASE_URL and PORT set.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
    }),
  ],
  // Reads only, as v4 runs with --disable-default-mutations.
  schema: { defaultBehavior: "-insert -update -delete" },
  // As v4 by default: conditions on every column, indexed or not (the
  // count by tag looks a tag up by workspace and name).
  disablePlugins: ["PgIndexBehaviorsPlugin"],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphiql: false,
  },
  grafast: { explain: false },
};

export default preset;
