// The type each dashboards/*.json must satisfy: @grafana/schema's Dashboard, made stricter
// where the plain type says `Record<string, unknown>`:
//  - every panel is one of the panel types we use, and its `options` and
//    `fieldConfig.defaults.custom` are checked against that panel plugin's schema;
//  - every query, in a panel or a variable, is a Prometheus query on the `${datasource}` variable.
// Grafana's schema uses TypeScript enums; JSON holds their string values, so
// `Json<T>` turns every string enum into the union of its values.
import type {
  Dashboard,
  DataSourceRef,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
  VariableModel,
  VariableType,
} from '@grafana/schema';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as Text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** A string enum becomes the union of its string values, recursively. */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** Every panel and variable reads from the dashboard's datasource variable. */
export interface PrometheusDatasource extends DataSourceRef {
  type: 'prometheus';
  uid: '${datasource}';
}

/** A Prometheus query as Grafana stores it in `targets`. */
export interface PrometheusQuery {
  datasource: PrometheusDatasource;
  refId: string;
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  intervalFactor?: number;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  hide?: boolean;
}

type PanelOf<TType extends string, TOptions, TCustom> = Omit<
  Panel,
  'type' | 'options' | 'fieldConfig' | 'datasource' | 'targets'
> & {
  type: TType;
  datasource: PrometheusDatasource;
  targets: PrometheusQuery[];
  options: TOptions;
  fieldConfig: Omit<FieldConfigSource, 'defaults'> & {
    defaults: Omit<FieldConfig, 'custom'> & { custom?: Partial<TCustom> };
  };
};

type TextPanel = Omit<Panel, 'type' | 'options' | 'targets' | 'datasource'> & {
  type: 'text';
  options: Text.Options;
};

export type TypedPanel =
  | PanelOf<'stat', Stat.Options, Record<string, never>>
  | PanelOf<'bargauge', BarGauge.Options, Record<string, never>>
  | PanelOf<'table', Table.Options, Table.FieldConfig>
  | PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | PanelOf<'state-timeline', StateTimeline.Options, StateTimeline.FieldConfig>
  | TextPanel;

type TypedRow = Omit<RowPanel, 'panels'> & { panels: TypedPanel[] };

/** A `label_values(...)`-style variable; Grafana 10+ stores its query as an object. */
type QueryVariable = Omit<VariableModel, 'type' | 'datasource' | 'query'> & {
  type: 'query';
  datasource: PrometheusDatasource;
  query: { query: string; refId: string; qryType?: number };
};

type OtherVariable = Omit<VariableModel, 'type'> & { type: Exclude<VariableType, 'query'> };

export type CheckedPanel = Json<TypedPanel>;

export type CheckedDashboard = Json<
  Omit<Dashboard, 'panels' | 'uid' | 'title' | 'templating'> & {
    uid: string;
    title: string;
    panels: Array<TypedPanel | TypedRow>;
    templating: { list: Array<QueryVariable | OtherVariable> };
  }
>;
