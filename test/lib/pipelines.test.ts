/**
 * Pipeline files (lib/pipelines.ts): the example deployment's folder, and one test per rule a deployed pipeline must
 * follow, each failing with the file, the field, the value and the fix.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';
import {
  DATA_BUCKET_STANDIN,
  embeddedSpecJson,
  isDataBucket,
  loadPipelines,
  MAX_EMBEDDED_SPEC_CHARS,
  parsePipelineText,
  pipelineOutputKeys,
  triggerKeyPrefix,
} from '../../lib/pipelines.js';
import { parseJobSpec } from '../../src/spec/load.js';

/** A valid deployed pipeline; `extra` is appended (triggers), `replace` edits lines. */
function pipelineYaml(
  options: { name?: string; extra?: string; replace?: Record<string, string> } = {},
): string {
  let text = [
    `name: ${options.name ?? 'scores'}`,
    'input:',
    '  uri: s3://${dataBucket}/incoming/scores/',
    '  format: csv',
    'model:',
    '  uri: s3://${dataBucket}/models/scores/model.onnx',
    '  inputs:',
    '    - tensor: features',
    '      from: { columns: [a, b] }',
    '  outputs:',
    '    - tensor: score',
    'output:',
    '  uri: s3://${dataBucket}/predictions/scores/',
    '',
  ].join('\n');
  for (const [from, to] of Object.entries(options.replace ?? {})) text = text.replace(from, to);
  return text + (options.extra ?? '');
}

function problems(text: string, file = 'pipelines/scores.yaml'): string {
  try {
    parsePipelineText(text, file);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the pipeline to be rejected');
}

describe('the example deployment (pipelines/)', () => {
  const pipelines = loadPipelines(path.join(REPO_ROOT, 'pipelines'));

  it('has two pipelines with S3, schedule and volume triggers', () => {
    expect(pipelines.map((p) => p.name)).toEqual(['breast_cancer', 'breast_cancer_daily']);
    expect(pipelines.map((p) => p.triggers.map((t) => t.kind))).toEqual([
      ['s3', 'schedule'],
      ['schedule', 'volume'],
    ]);
  });

  it('writes the data bucket as ${dataBucket}, validated with a stand-in name', () => {
    const [first] = pipelines;
    expect(first!.spec.input.uri).toBe(`s3://${DATA_BUCKET_STANDIN}/incoming/breast_cancer/`);
    expect(isDataBucket(DATA_BUCKET_STANDIN)).toBe(true);
  });

  it('embeds a spec without triggers that Plan validates again, unchanged', () => {
    for (const pipeline of pipelines) {
      const embedded = JSON.parse(embeddedSpecJson(pipeline)) as Record<string, unknown>;
      expect(embedded).not.toHaveProperty('triggers');
      expect(JSON.parse(JSON.stringify(parseJobSpec(embedded)))).toEqual(embedded);
      expect(embeddedSpecJson(pipeline).length).toBeLessThan(MAX_EMBEDDED_SPEC_CHARS);
    }
  });

  it('runs one pipeline on the GPU queue and one on the CPU queue', () => {
    expect(pipelines.map((p) => p.spec.run.compute)).toEqual(['gpu', 'cpu']);
  });
});

describe('pipeline rules', () => {
  it('accepts a valid pipeline and defaults trigger prefixes to the key prefix of input.uri', () => {
    const pipeline = parsePipelineText(
      pipelineYaml({ extra: 'triggers:\n  - s3: { suffix: .csv }\n' }),
      'p.yaml',
    );
    expect(pipeline.name).toBe('scores');
    expect(triggerKeyPrefix(pipeline.spec, undefined)).toBe('incoming/scores/');
  });

  it('rule: the file is YAML', () => {
    expect(problems('name: [unclosed')).toMatch(
      /Invalid job spec pipelines\/scores\.yaml:[\s\S]*is not valid YAML/,
    );
  });

  it('rule: the spec is valid (the job spec schema)', () => {
    expect(problems(pipelineYaml({ replace: { 'name: scores': 'name: Scores' } }))).toMatch(
      /pipelines\/scores\.yaml[\s\S]*name: must start with a lowercase letter/,
    );
  });

  it('rule: paths are URIs, not relative paths', () => {
    expect(problems(pipelineYaml({ replace: { 's3://${dataBucket}/incoming/scores/': 'data/' } }))).toMatch(
      /input\.uri: relative paths are only allowed in a spec file/,
    );
  });

  it('rule: paths are s3:// URIs, not file://', () => {
    expect(
      problems(pipelineYaml({ replace: { 's3://${dataBucket}/predictions/scores/': 'file:///tmp/out/' } })),
    ).toMatch(
      /output\.uri: must be an s3:\/\/ URI in a deployed pipeline \(relative paths and file:\/\/ only make sense for local runs\); write the data bucket as s3:\/\/\$\{dataBucket\}/,
    );
  });

  it('rule: triggers are valid, reported with the spec problems', () => {
    expect(problems(pipelineYaml({ extra: 'triggers:\n  - schedule: { cron: "0 2 * * *" }\n' }))).toMatch(
      /triggers\[0\]\.schedule\.cron: has 5 field\(s\)/,
    );
    // Once, although both the pipeline loader and the spec loader check triggers.
    const message = problems(pipelineYaml({ extra: 'triggers:\n  - schedule: { cron: "0 2 * * *" }\n' }));
    expect(message.match(/triggers\[0\]\.schedule\.cron/g)).toHaveLength(1);
  });

  it('rule: an S3 trigger needs input.manifest auto or list (it passes one object)', () => {
    expect(
      problems(
        pipelineYaml({
          replace: { '  format: csv': '  format: csv\n  manifest: prefix' },
          extra: 'triggers:\n  - s3: {}\n',
        }),
      ),
    ).toMatch(
      /input\.manifest: cannot be used with a s3 trigger \(triggers\[0\]\.s3\).*use "auto" or "list"/,
    );
  });

  it('rule: a volume trigger needs input.manifest auto or prefix (it passes the prefix)', () => {
    expect(
      problems(
        pipelineYaml({
          replace: { '  format: csv': '  format: csv\n  manifest: list' },
          extra: 'triggers:\n  - volume: { minBytes: 1GiB }\n',
        }),
      ),
    ).toMatch(/input\.manifest: cannot be used with a volume trigger.*use "auto" or "prefix"/);
  });

  it('rule: a trigger prefix may not overlap the output (runs would trigger runs)', () => {
    expect(problems(pipelineYaml({ extra: 'triggers:\n  - s3: { prefix: predictions/ }\n' }))).toMatch(
      /triggers\[0\]\.s3\.prefix: overlaps output\.uri .*every run's output would trigger another run/,
    );
  });

  describe('a manifest input outside the data bucket', () => {
    const listManifest = {
      's3://${dataBucket}/incoming/scores/': 's3://corp-landing/lists/today.jsonl',
      '  format: csv': '  format: csv\n  manifest: list',
    };

    it('rule: names where the objects it lists live (manifestObjects), or fails naming the field, the cause and the fix', () => {
      expect(problems(pipelineYaml({ replace: listManifest }))).toMatch(
        /manifestObjects: is required: input\.uri s3:\/\/corp-landing\/lists\/today\.jsonl is a list manifest \(input\.manifest: list\), in bucket corp-landing outside the data bucket, and Plan and the workers may read the manifest but not the objects it names\. Add manifestObjects: .*e\.g\. manifestObjects: \["s3:\/\/corp-landing\/"\]/,
      );
    });

    it('rule: the same for an S3 Inventory manifest, whose data files must be listed too', () => {
      expect(
        problems(
          pipelineYaml({
            replace: {
              's3://${dataBucket}/incoming/scores/':
                's3://corp-inventory/data-bucket/daily/2025-01-01T01-00Z/manifest.json',
              '  format: csv': '  format: csv\n  manifest: s3-inventory',
            },
          }),
        ),
      ).toMatch(
        /manifestObjects: is required: .*S3 Inventory manifest\.json.*\(and the inventory's data files\)/,
      );
    });

    it("rule: the same when manifest: auto reads input.uri or an S3 trigger's objects as manifests by their name", () => {
      expect(
        problems(
          pipelineYaml({
            replace: { 's3://${dataBucket}/incoming/scores/': 's3://corp-landing/x.manifest' },
          }),
        ),
      ).toMatch(
        /manifestObjects: is required: input\.uri s3:\/\/corp-landing\/x\.manifest has a manifest's name/,
      );
      expect(
        problems(
          pipelineYaml({
            replace: { 's3://${dataBucket}/incoming/scores/': 's3://corp-landing/drops/' },
            extra: 'triggers:\n  - s3: { suffix: .manifest }\n',
          }),
        ),
      ).toMatch(
        /manifestObjects: is required: triggers\[0\]\.s3 starts runs over created objects with a manifest's name/,
      );
    });

    it('rule: manifestObjects is a list of s3:// prefixes', () => {
      expect(
        problems(pipelineYaml({ replace: listManifest, extra: 'manifestObjects: s3://corp-landing/\n' })),
      ).toMatch(/manifestObjects: must be a list of s3:\/\/ prefixes ending in "\/"/);
      expect(
        problems(
          pipelineYaml({
            replace: listManifest,
            extra: 'manifestObjects: [s3://corp-landing/a.csv, data/]\n',
          }),
        ),
      ).toMatch(/manifestObjects\[0\]: must be a list of s3:\/\/ prefixes[\s\S]*manifestObjects\[1\]/);
    });

    it('accepts the pipeline with manifestObjects, outside the spec every run receives', () => {
      const pipeline = parsePipelineText(
        pipelineYaml({
          replace: listManifest,
          extra: 'manifestObjects: ["s3://corp-landing/exports/", "s3://${dataBucket}/shared/"]\n',
        }),
        'p.yaml',
      );
      expect(pipeline.manifestObjects).toEqual([
        's3://corp-landing/exports/',
        `s3://${DATA_BUCKET_STANDIN}/shared/`,
      ]);
      expect(pipeline.spec).not.toHaveProperty('manifestObjects');
    });

    it('needs no manifestObjects for a prefix, a data file, or a manifest in the data bucket', () => {
      const replacements: Record<string, string>[] = [
        { 's3://${dataBucket}/incoming/scores/': 's3://corp-landing/exports/' },
        { 's3://${dataBucket}/incoming/scores/': 's3://corp-landing/exports/part-0.csv' },
        { '  format: csv': '  format: csv\n  manifest: list', 'incoming/scores/': 'lists/today.jsonl' },
      ];
      for (const replace of replacements) {
        expect(parsePipelineText(pipelineYaml({ replace }), 'p.yaml').manifestObjects).toEqual([]);
      }
    });
  });

  it('rule: a triggered spec fits in the trigger input', () => {
    const many = Array.from({ length: 600 }, (_, i) => `column_number_${i}`).join(', ');
    expect(
      problems(pipelineYaml({ replace: { '[a, b]': `[${many}]` }, extra: 'triggers:\n  - s3: {}\n' })),
    ).toMatch(new RegExp(`triggers: cannot start runs: .*at most ${MAX_EMBEDDED_SPEC_CHARS} characters`));
  });

  describe('across a folder', () => {
    const folders: string[] = [];
    afterEach(() => {
      for (const dir of folders.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    });

    function folder(files: Record<string, string>): string {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-pipelines-'));
      folders.push(dir);
      for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
      return dir;
    }

    it('rule: the folder exists', () => {
      expect(() => loadPipelines('/nonexistent/pipelines')).toThrow(
        /The pipelines folder \/nonexistent\/pipelines does not exist\. Fix: create it, or set pipelinesDir/,
      );
    });

    it('rule: pipeline names are unique', () => {
      const dir = folder({ 'a.yaml': pipelineYaml(), 'b.yaml': pipelineYaml() });
      expect(() => loadPipelines(dir)).toThrow(
        /b\.yaml: name "scores" needs the Glue table "scores", which .*a\.yaml needs too/,
      );
    });

    it("rule: no pipeline is named like another one's runs table", () => {
      const dir = folder({ 'a.yaml': pipelineYaml(), 'b.yaml': pipelineYaml({ name: 'scores_runs' }) });
      expect(() => loadPipelines(dir)).toThrow(/name "scores_runs" needs the Glue table "scores_runs"/);
    });

    it('rule: names give distinct stack outputs', () => {
      const dir = folder({
        'a.yaml': pipelineYaml({ name: 'a_b' }),
        'b.yaml': pipelineYaml({ name: 'a__b' }),
      });
      expect(() => loadPipelines(dir)).toThrow(
        /name "a__b" gives the same stack output names \(PipelineAB\.\.\.\) as "a_b"/,
      );
    });

    it('reports every invalid file at once, and reads only *.yaml and *.yml', () => {
      const dir = folder({
        'a.yaml': pipelineYaml({ replace: { 'name: scores': 'name: 1' } }),
        'b.yml': pipelineYaml({ replace: { '  format: csv': '  format: xls' } }),
        'README.md': '# not a pipeline',
      });
      let message = '';
      try {
        loadPipelines(dir);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/a\.yaml[\s\S]*b\.yml/);
      expect(message).not.toMatch(/README/);
    });
  });

  it('gives each pipeline stable stack output keys', () => {
    expect(pipelineOutputKeys('breast_cancer')).toEqual({
      stateMachineArn: 'PipelineBreastCancerStateMachineArn',
      table: 'PipelineBreastCancerTable',
      runsTable: 'PipelineBreastCancerRunsTable',
    });
  });
});
