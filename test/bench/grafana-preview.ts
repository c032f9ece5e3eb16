/**
 * `npm run -s -w @airlock/system-tests render:grafana`
 *
 * Renders docs/grafana/airlock.json to docs/grafana/airlock.png in Debian's Chromium (playwright-core),
 * for the docs: Grafana itself does not run here, so a small static page lays the panels out on
 * Grafana's 24-column grid from the JSON, each with its title, type and queries. It shows the
 * dashboard's layout and what each panel asks Prometheus; it draws no data.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { launchChromium } from '../src/browser.ts';
import { REPO_ROOT } from '../src/system.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const DIR = path.join(REPO_ROOT, 'docs', 'grafana');

interface Panel {
  title: string;
  type: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr?: string; legendFormat?: string }>;
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const dashboard = JSON.parse(await readFile(path.join(DIR, 'airlock.json'), 'utf8')) as { title: string; panels: Panel[]; templating?: { list?: Array<{ label?: string; name: string }> } };
const ROW_PX = 30;
const rows = Math.max(...dashboard.panels.map((panel) => panel.gridPos.y + panel.gridPos.h));
const panels = dashboard.panels
  .map((panel) => {
    const { x, y, w, h } = panel.gridPos;
    const queries = (panel.targets ?? []).map((target) => `<li><code>${escape(target.expr ?? '')}</code>${target.legendFormat ? ` <span class="legend">${escape(target.legendFormat)}</span>` : ''}</li>`).join('');
    return `<section class="panel ${escape(panel.type)}" style="left:calc(${x} / 24 * 100%);top:${y * ROW_PX}px;width:calc(${w} / 24 * 100% - 8px);height:${h * ROW_PX - 8}px">
      <header><h2>${escape(panel.title)}</h2><span class="type">${escape(panel.type)}</span></header><ul>${queries}</ul></section>`;
  })
  .join('\n');
const variables = (dashboard.templating?.list ?? []).map((variable) => `<span class="variable">${escape(variable.label ?? variable.name)}: All</span>`).join('');
const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escape(dashboard.title)}</title><style>
  body { margin: 0; background: #111217; color: #ccccdc; font: 13px/1.35 system-ui, sans-serif; }
  .bar { padding: 10px 16px; display: flex; gap: 16px; align-items: center; border-bottom: 1px solid #2a2d35; }
  .bar h1 { font-size: 18px; margin: 0; color: #fff; }
  .variable { background: #22252b; padding: 4px 8px; border-radius: 2px; }
  .note { margin-left: auto; color: #8e8e9e; }
  .grid { position: relative; margin: 12px 12px 0 16px; height: ${rows * ROW_PX}px; }
  .panel { position: absolute; box-sizing: border-box; background: #181b1f; border: 1px solid #2a2d35; border-radius: 2px; padding: 6px 10px; overflow: hidden; }
  .panel header { display: flex; justify-content: space-between; }
  .panel h2 { font-size: 13px; margin: 0 0 4px; color: #fff; }
  .type { color: #6e9fff; font-size: 11px; }
  .panel ul { margin: 0; padding-left: 14px; }
  .panel li { margin: 2px 0; }
  code { color: #73bf69; font: 11px/1.3 ui-monospace, monospace; word-break: break-all; }
  .legend { color: #8e8e9e; font-size: 11px; }
</style></head><body><div class="bar"><h1>${escape(dashboard.title)}</h1>${variables}<span class="note">layout preview from docs/grafana/airlock.json: queries, no data</span></div>
<div class="grid">${panels}</div></body></html>`;

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await page.setContent(html);
  const out = path.join(DIR, 'airlock.png');
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`${JSON.stringify({ screenshot: path.relative(REPO_ROOT, out), panels: dashboard.panels.length })}\n`);
} finally {
  await browser.close();
}
