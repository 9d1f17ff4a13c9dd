// Charts of the statistics page, drawn with the vendored ECharts from the JSON the server put in
// #stats-charts: the trend, the stacked options, the weekday × hour heat map, the outlets.
document.addEventListener("DOMContentLoaded", () => {
  // the custom dates matter only with the custom period
  const period = document.querySelector("[data-period]");
  if (period) {
    const sync = () => document.querySelectorAll("[data-custom]").forEach((el) => { el.readOnly = period.value !== "custom"; });
    period.addEventListener("change", sync);
    document.querySelectorAll("[data-custom]").forEach((el) => el.addEventListener("input", () => { period.value = "custom"; sync(); }));
    sync();
  }
  const holder = document.getElementById("stats-charts");
  if (!holder || typeof echarts === "undefined") return;
  const data = JSON.parse(holder.dataset.charts || "{}");
  const L = data.labels || {};
  const charts = [];
  const make = (id, option) => {
    const el = document.getElementById(id);
    if (!el) return;
    const chart = echarts.init(el);
    chart.setOption(Object.assign({ animation: false, tooltip: { trigger: "axis" } }, option));
    charts.push(chart);
  };
  const twoAxes = (labels, services, satisfaction, bar) => ({
    legend: { top: 0 },
    grid: { left: 48, right: 48, top: 32, bottom: 48 },
    xAxis: { type: "category", data: labels, axisLabel: { hideOverlap: true } },
    yAxis: [{ type: "value", name: L.services, minInterval: 1 }, { type: "value", name: "%", min: 0, max: 100 }],
    series: [
      { name: L.services, type: bar ? "bar" : "line", data: services, smooth: !bar },
      { name: L.satisfaction, type: "line", yAxisIndex: 1, data: satisfaction, connectNulls: true },
    ],
  });
  if (data.trend) make("chart-trend", twoAxes(data.trend.labels, data.trend.services, data.trend.satisfaction, false));
  if (data.options) make("chart-options", {
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 32, bottom: 48 },
    xAxis: { type: "category", data: data.options.labels, axisLabel: { hideOverlap: true } },
    yAxis: { type: "value", minInterval: 1 },
    series: data.options.series.map((s) => ({ name: s.name, type: "bar", stack: "options", data: s.data })),
  });
  if (data.heat) {
    const max = Math.max(1, ...data.heat.map((p) => p[2]));
    make("chart-heat", {
      tooltip: { position: "top" },
      grid: { left: 56, right: 16, top: 8, bottom: 84 },
      xAxis: { type: "category", data: Array.from({ length: 24 }, (_, h) => String(h)), splitArea: { show: true } },
      yAxis: { type: "category", data: L.weekdays, inverse: true, splitArea: { show: true } },
      visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0, itemHeight: 160, itemWidth: 12 },
      series: [{ name: L.services, type: "heatmap", data: data.heat, label: { show: false } }],
    });
  }
  if (data.outlets) make("chart-outlets", twoAxes(data.outlets.labels, data.outlets.services, data.outlets.satisfaction, true));
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
});
