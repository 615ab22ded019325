/**
 * Wrapper overhead per call: the same SDK calls against the local protocol server
 * (test/integration/helpers/llm-servers.ts, run in a child process so that this process's CPU time
 * is the client's alone), bare and wrapped (wrapOpenAI / wrapAnthropic, recording through a real
 * CostTracker whose Temporal client accepts every signal at once, so `record()`'s validation and
 * batching are in the figure, the network to Temporal is not), in the same run, interleaved round by
 * round so that a noisy shared machine weighs on both sides alike.
 *
 *   npx tsx bench/wrappers.ts [--calls 300] [--rounds 15]
 *
 * Prints, per scenario, the median over rounds of the mean wall time and of the client's CPU time per
 * call (one call in flight at a time), bare and wrapped, and the median of the per-round differences
 * (wrapped minus bare, each pair measured back to back), also as a share of a 1 ms round trip (the
 * target: under 5%, i.e. 50 us).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { CostTracker } from '../src/client/cost-tracker.js';
import { CostContext, runWithCostContext } from '../src/client/context.js';
import { wrapAnthropic, wrapOpenAI } from '../src/client/wrappers/index.js';
import { machine } from './lib.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : fallback;
}

const CALLS = arg('calls', 300);
const ROUNDS = arg('rounds', 15);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Side {
  wallUs: number[];
  cpuUs: number[];
}

async function measure(call: () => Promise<unknown>, n: number, side: Side): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await call();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  side.wallUs.push((wall * 1000) / n);
  side.cpuUs.push((cpu.user + cpu.system) / n);
}

/** The protocol server in a child process; resolves with its URL. */
async function startServer(): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `const { startLlmServer } = await import(${JSON.stringify(new URL('../test/integration/helpers/llm-servers.ts', import.meta.url).href)}); const s = await startLlmServer({ pieces: 5 }); console.log(s.url);`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { url: line.toString().trim(), stop: () => child.kill() };
}

async function main(): Promise<void> {
  const server = await startServer();
  const srv = { openaiBaseURL: `${server.url}/v1`, anthropicBaseURL: server.url };
  const tracker = new CostTracker({ client: { workflow: { signalWithStart: async () => undefined as never } }, taskQueue: 'bench', lingerMs: 50 });
  let failures = 0;
  const wrapOptions = { tracker, onError: () => failures++ };
  const bareOpenAI = new OpenAI({ apiKey: 'sk-bench', baseURL: srv.openaiBaseURL, maxRetries: 0 });
  const bareAnthropic = new Anthropic({ apiKey: 'sk-ant-bench', baseURL: srv.anthropicBaseURL, maxRetries: 0 });
  const openai = wrapOpenAI(bareOpenAI, { ...wrapOptions, userId: 'bench' });
  const anthropic = wrapAnthropic(bareAnthropic, { ...wrapOptions, userId: 'bench' });
  // The wrapper alone: a recorder that drops the events, to tell the wrapper's share from CostTracker.record()'s.
  const openaiNoRecord = wrapOpenAI(bareOpenAI, { tracker: { record: () => Promise.resolve() }, userId: 'bench' });
  const messages = [{ role: 'user' as const, content: 'Summarise the quarterly report in three bullet points.' }];
  const ctx = new CostContext({ attribution: { userId: 'bench-request', taskType: 'chat' } });

  const handEvent = (model: string, u: { prompt_tokens: number; completion_tokens: number } | undefined) => ({
    occurredAt: new Date(),
    provider: 'openai',
    model,
    userId: 'bench',
    usage: { inputTokens: u?.prompt_tokens ?? 0, outputTokens: u?.completion_tokens ?? 0 },
    metadata: { api: 'chat.completions', stream: false, status: 'ok', durationMs: 1, estimated: false },
  });
  const drain = async (s: AsyncIterable<unknown>) => {
    for await (const _ of s) {
      // to the end
    }
  };
  const scenarios: Array<{ name: string; bare: () => Promise<unknown>; wrapped: () => Promise<unknown> }> = [
    {
      name: 'OpenAI chat.completions (JSON)',
      bare: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages }),
      wrapped: () => openai.chat.completions.create({ model: 'gpt-4o-mini', messages }),
    },
    {
      name: 'OpenAI chat.completions (JSON), events dropped instead of recorded',
      bare: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages }),
      wrapped: () => openaiNoRecord.chat.completions.create({ model: 'gpt-4o-mini', messages }),
    },
    {
      // No wrapper: the bare call, then the record() the wrapper would make. Its overhead is what
      // recording costs where it runs (after an SDK call), the wrapper's own share left out.
      name: 'OpenAI chat.completions (JSON), bare call + CostTracker.record() by hand, no wrapper',
      bare: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages }),
      wrapped: async () => {
        const r = await bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages });
        tracker.record(handEvent(r.model, r.usage)).catch(() => failures++);
        return r;
      },
    },
    {
      name: 'OpenAI chat.completions (JSON), in a request context',
      bare: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages }),
      wrapped: () => runWithCostContext(ctx, () => openai.chat.completions.create({ model: 'gpt-4o-mini', messages })),
    },
    {
      name: 'OpenAI chat.completions (stream, 5 chunks)',
      bare: async () => drain(await bareOpenAI.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } })),
      wrapped: async () => drain(await openai.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } })),
    },
    {
      name: 'OpenAI responses (JSON)',
      bare: () => bareOpenAI.responses.create({ model: 'gpt-4o-mini', input: 'Summarise the report.' }),
      wrapped: () => openai.responses.create({ model: 'gpt-4o-mini', input: 'Summarise the report.' }),
    },
    {
      name: 'Anthropic messages (JSON)',
      bare: () => bareAnthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages }),
      wrapped: () => anthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages }),
    },
    {
      name: 'Anthropic messages (stream, 5 deltas)',
      bare: async () => drain(await bareAnthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages, stream: true })),
      wrapped: async () => drain(await anthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages, stream: true })),
    },
  ];

  console.log(`Wrapper overhead per call (${CALLS} calls x ${ROUNDS} rounds per side, interleaved; ${machine()})`);
  console.log('');
  console.log('| scenario | bare wall us | wrapped wall us | overhead wall us | % of 1 ms | bare CPU us | wrapped CPU us | overhead CPU us |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  // Warm every path up first (JIT, connections), so that no scenario pays for the next one's first calls.
  for (const s of scenarios) {
    for (let i = 0; i < 300; i++) {
      await s.bare();
      await s.wrapped();
    }
  }
  for (const s of scenarios) {
    const bare: Side = { wallUs: [], cpuUs: [] };
    const wrapped: Side = { wallUs: [], cpuUs: [] };
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        await measure(s.bare, CALLS, bare);
        await measure(s.wrapped, CALLS, wrapped);
      } else {
        await measure(s.wrapped, CALLS, wrapped);
        await measure(s.bare, CALLS, bare);
      }
    }
    // Per round, wrapped minus bare (the pair ran back to back), then the median of those.
    const diffWall = median(wrapped.wallUs.map((w, i) => w - bare.wallUs[i]!));
    const diffCpu = median(wrapped.cpuUs.map((w, i) => w - bare.cpuUs[i]!));
    const f = (x: number) => x.toFixed(1);
    console.log(`| ${s.name} | ${f(median(bare.wallUs))} | ${f(median(wrapped.wallUs))} | ${f(diffWall)} | ${((diffWall / 1000) * 100).toFixed(1)}% | ${f(median(bare.cpuUs))} | ${f(median(wrapped.cpuUs))} | ${f(diffCpu)} |`);
  }
  await tracker.close();
  const stats = tracker.stats();
  console.log('');
  console.log(`events recorded: ${stats.sentEvents.toLocaleString('en-US')}; recording failures: ${failures}`);
  server.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
