import { runIngestBench } from './ingest.js';
const [users, rate, dur] = process.argv.slice(2).map(Number);
console.log(JSON.stringify(await runIngestBench('postgres://postgres@127.0.0.1:5432/costguard', 'redis://127.0.0.1:6379', { users: users!, ratePerUser: rate!, durationSec: dur! }), null, 1));
