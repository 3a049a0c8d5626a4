## 造血干细胞捐献者：不良事件与捐献后的日期

nav-adverse-events = 不良事件

case-section-adverse-events = 不良事件
case-no-adverse-events = 尚未记录不良事件。
ae-add = 记录不良事件
ae-edit-link = 修改
marrow-blood-until = 可再次献血的日期
marrow-second-window-until = 再次捐献期截止

ae-new-title = 记录不良事件
ae-edit-title = 修改不良事件
ae-form-lead = 请如实记录捐献者在采集前后出现的不适或问题。描述属于健康信息，会加密保存，只有负责此个案的工作人员能看到。
ae-section-what = 发生了什么
ae-section-assessment = 评估与上报
ae-occurred-on = 发生日期
ae-occurred-on-hint = 动员期（采集前注射药物期间）出现的情况也请记录。
ae-category = 类别
ae-grade = 严重程度
ae-grade-hint = 参照 CTCAE 分级：1 级最轻，5 级为死亡。
ae-description = 描述
ae-description-hint = 用简单的话写下经过、处理和捐献者的感受。此内容加密保存。
ae-relation = 与捐献的关系
ae-outcome = 转归
ae-reported-on = 上报登记处的日期
ae-reported-on-hint = 尚未上报时请留空。

ae-category-pain = 疼痛
ae-category-fatigue = 乏力
ae-category-bleeding = 出血
ae-category-infection = 感染
ae-category-anaesthesia-reaction = 麻醉反应
ae-category-allergic = 过敏
ae-category-other = 其他

ae-grade-mild = 轻度
ae-grade-moderate = 中度
ae-grade-severe = 重度
ae-grade-life-threatening = 危及生命
ae-grade-death = 死亡
ae-grade-option-1 = 1 级 · 轻度
ae-grade-option-2 = 2 级 · 中度
ae-grade-option-3 = 3 级 · 重度
ae-grade-option-4 = 4 级 · 危及生命
ae-grade-option-5 = 5 级 · 死亡
ae-grade-any = 全部等级

ae-relation-related = 相关
ae-relation-possibly = 可能相关
ae-relation-unlikely = 不太可能相关
ae-relation-unrelated = 无关

ae-outcome-recovering = 恢复中
ae-outcome-resolved = 已痊愈
ae-outcome-resolved-with-sequelae = 已好转但留有后遗症
ae-outcome-ongoing = 仍在持续

ae-list-title = 不良事件
ae-list-lead = 您负责的造血干细胞捐献者记录的不良事件。登记处报表不含姓名、电话或描述，只用个案代码。
ae-csv = 下载登记处报表（CSV）
ae-filter-from = 发生日期起
ae-filter-to = 发生日期止
ae-filter-grade = 严重程度
ae-filter-show = 筛选
ae-not-reported = 尚未上报
ae-reference = 个案代码
ae-none = 没有符合条件的不良事件。

ae-not-marrow-title = 此个案不记录不良事件
ae-not-marrow-body = 不良事件只为造血干细胞捐献者记录。

msg-ae-before-collection = 不能早于采集日（{ $b }）前 { $a } 天
msg-ae-reported-early = 上报日期不能早于发生日期
msg-range = 结束日期不能早于开始日期
