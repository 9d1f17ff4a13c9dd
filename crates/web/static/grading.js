// Charts of the grading pages: every element with data-chart ("bar" or "line") and data-points
// (JSON [[label, value]…]) becomes an ECharts chart.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof echarts === "undefined") return;
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const points = JSON.parse(el.dataset.points || "[]");
    const chart = echarts.init(el);
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 16, top: 16, bottom: 28 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: points.map((p) => p[0]) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: el.dataset.chart, data: points.map((p) => p[1]), label: { show: el.dataset.chart === "bar", position: "top" } }],
    });
    window.addEventListener("resize", () => chart.resize());
  });
});
