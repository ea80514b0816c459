// Writes output_dir/report.html and output_dir/charts/*.svg from a run's metric records.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetricRecord } from '../report/charts.js';
import { renderReportHtml, type ReportInput } from '../report/html.js';

export async function writeReport(outputDir: string, records: readonly MetricRecord[],
  page: Omit<ReportInput, 'charts'>): Promise<{ html: string; charts: string[] }> {
  // vega takes a second to load: only runs that write a report pay for it
  const { renderCharts } = await import('../report/charts.js');
  const charts = await renderCharts(records);
  const chartDir = join(outputDir, 'charts');
  await mkdir(chartDir, { recursive: true });
  const files: string[] = [];
  for (const c of charts) {
    const file = join(chartDir, `${c.def.id.replace(/[^a-z0-9_]/gi, '_')}.svg`);
    await writeFile(file, c.svg);
    files.push(file);
  }
  const html = join(outputDir, 'report.html');
  await writeFile(html, renderReportHtml({ ...page, charts }));
  return { html, charts: files };
}
